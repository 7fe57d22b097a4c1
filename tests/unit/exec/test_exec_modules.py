import pytest

from lilypad_p2p.errors import PeerMisbehaved
from lilypad_p2p.exec import BUILTIN_MODULES, BadParameters, Module, Param, Resources

RESOURCES = Resources(milli_cpu=100, memory_bytes=32 * 2**20, disk_bytes=2**20)


def _module(**overrides):
    fields = {
        "name": "echo",
        "image": "recipe:busybox",
        "command": ("/bin/echo", "{text}", "-{text}-", "{count}", "{flag}"),
        "params": {
            "text": Param("str", max_length=8),
            "count": Param("int", default=3, minimum=1, maximum=5),
            "flag": Param("bool", default=False),
        },
        "resources": RESOURCES,
    }
    fields.update(overrides)
    return Module(**fields)


def test_only_whole_element_placeholders_are_substituted():
    argv = _module().render_command({"text": "hi"})
    assert argv == ("/bin/echo", "hi", "-{text}-", "3", "false")


def test_shell_syntax_in_values_stays_one_literal_argument():
    argv = _module().render_command({"text": "$(rm) ;x", "flag": True})
    assert argv[1] == "$(rm) ;x"
    assert argv[4] == "true"
    assert len(argv) == 5


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({}, "required"),
        ({"text": "a", "other": 1}, "unknown parameter"),
        ({"text": 5}, "expected str"),
        ({"text": "a", "count": True}, "expected int"),
        ({"text": "a", "count": "3"}, "expected int"),
        ({"text": "a", "count": 0}, "below the minimum"),
        ({"text": "a", "count": 6}, "above the maximum"),
        ({"text": "123456789"}, "longer than"),
        ({"text": "a\x00b"}, "NUL"),
        ({"text": "a", "flag": 1}, "expected bool"),
    ],
)
def test_parameters_are_checked_against_their_types(given, message):
    with pytest.raises(BadParameters, match=message) as error:
        _module().render_command(given)
    assert isinstance(error.value, PeerMisbehaved)


@pytest.mark.parametrize(
    ("given", "read"),
    [
        ({"text": "42"}, {"text": "42", "count": 3, "flag": False}),
        ({"text": "a", "count": " 4 ", "flag": "true"}, {"text": "a", "count": 4, "flag": True}),
        ({"text": "a", "count": "+2", "flag": "No"}, {"text": "a", "count": 2, "flag": False}),
        ({"text": "", "flag": "1"}, {"text": "", "count": 3, "flag": True}),
    ],
)
def test_command_line_text_is_read_by_each_parameters_kind(given, read):
    assert _module().params_from_text(given) == read


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"text": "a", "count": "three"}, "'count': expected int, got 'three'"),
        ({"text": "a", "count": "²"}, "'count': expected int, got '²'"),
        ({"text": "a", "count": "--5"}, "'count': expected int"),
        ({"text": "a", "count": "9"}, "above the maximum"),
        ({"text": "a", "flag": "maybe"}, "'flag': expected bool, got 'maybe'"),
        ({"text": "a", "other": "1"}, "unknown parameter"),
        ({}, "required"),
    ],
)
def test_command_line_text_that_does_not_fit_is_refused(given, message):
    with pytest.raises(BadParameters, match=message):
        _module().params_from_text(given)


def test_choices_are_enforced():
    module = _module(params={"text": Param("str", choices=("a", "b"))}, command=("x", "{text}"))
    assert module.render_command({"text": "b"}) == ("x", "b")
    with pytest.raises(BadParameters, match="not one of"):
        module.render_command({"text": "c"})


@pytest.mark.parametrize(
    "overrides",
    [
        {"name": "Bad Name"},
        {"image": "busybox:latest"},
        {"image": "busybox@sha256:abc"},
        {"command": ()},
        {"command": ("x", "{undeclared}")},
        {"params": {"Bad-Name": Param("str")}},
    ],
)
def test_invalid_module_definitions_are_refused(overrides):
    with pytest.raises(ValueError):
        _module(**overrides)


def test_registry_images_must_be_pinned_by_digest():
    module = _module(image="docker.io/library/busybox@sha256:" + "a" * 64)
    assert module.image.endswith("a" * 64)


@pytest.mark.parametrize(
    "param",
    [
        lambda: Param("float"),  # type: ignore[arg-type]
        lambda: Param("str", minimum=1),
        lambda: Param("int", max_length=1),
        lambda: Param("int", default="x"),
        lambda: Param("str", choices=("ok", 1)),
    ],
)
def test_invalid_parameter_declarations_are_refused(param):
    with pytest.raises((ValueError, BadParameters)):
        param()


@pytest.mark.parametrize(
    "fields",
    [
        {"milli_cpu": 0, "memory_bytes": 2**26, "disk_bytes": 1},
        {"milli_cpu": 1, "memory_bytes": 2**20, "disk_bytes": 1},
        {"milli_cpu": 1, "memory_bytes": 2**26, "disk_bytes": 0},
        {"milli_cpu": 1, "memory_bytes": 2**26, "disk_bytes": 1, "gpu_count": -1},
        {"milli_cpu": 1, "memory_bytes": 2**26, "disk_bytes": 1, "max_processes": 0},
    ],
)
def test_invalid_resources_are_refused(fields):
    with pytest.raises(ValueError):
        Resources(**fields)


def test_builtin_catalog_has_the_required_kinds_of_module():
    assert {"hash", "wordcount", "random"} <= set(BUILTIN_MODULES)
    assert not BUILTIN_MODULES["random"].deterministic
    assert BUILTIN_MODULES["hash"].deterministic and BUILTIN_MODULES["wordcount"].deterministic
    assert BUILTIN_MODULES["hash"].render_command({"text": "x"})[-2:] == ("sha256", "x")
    assert BUILTIN_MODULES["wordcount"].render_command({})[-2:] == ("input.txt", "10")
