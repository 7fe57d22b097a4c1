import lilypad_p2p.exec as exec_package
from lilypad_p2p.errors import LilypadError


def test_every_exported_name_exists_and_errors_hang_under_exec_error():
    for name in exec_package.__all__:
        assert hasattr(exec_package, name), name
    errors = [
        getattr(exec_package, name)
        for name in exec_package.__all__
        if isinstance(getattr(exec_package, name), type)
        and issubclass(getattr(exec_package, name), Exception)
    ]
    assert len(errors) >= 13
    assert all(issubclass(error, exec_package.ExecError) for error in errors)
    assert issubclass(exec_package.ExecError, LilypadError)
