"""The suite's split over xdist workers (tests/conftest.py): which tests share a worker, and
the piece of xdist it overrides."""

import importlib.util
import inspect
from pathlib import Path

import pytest
from xdist.scheduler import LoadScopeScheduling

# By its path: each folder's conftest.py is a module named "conftest", whichever came first.
_SPEC = importlib.util.spec_from_file_location("suite_conftest",
                                               Path(__file__).parents[1] / "conftest.py")
assert _SPEC is not None and _SPEC.loader is not None
conftest = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(conftest)


@pytest.mark.parametrize(("nodeid", "group"), [
    ("tests/integration/nat/test_nat_deal.py::test_x", "namespaces"),
    ("tests/integration/simnet/test_simnet_compose.py::test_y[a]", "namespaces"),
    ("tests/integration/exec/test_exec_outputs_bound.py::test_z", "namespaces"),
    ("tests/integration/hostile/test_hostile_streams.py::test_w",
     "tests/integration/hostile/test_hostile_streams.py"),
    ("tests/integration/exec/test_exec_docker.py::test_v",
     "tests/integration/exec/test_exec_docker.py::test_v"),
    ("tests/unit/test_clock.py::test_u[1]", "tests/unit/test_clock.py::test_u[1]"),
])
def test_tests_are_grouped_by_path(nodeid, group):
    assert conftest.worker_group(nodeid) == group


def test_the_scope_scheduler_still_asks_split_scope_for_a_tests_unit_of_work():
    # The override replaces this one method; xdist renaming or dropping it would silently
    # undo the grouping.
    assert "_split_scope" in vars(LoadScopeScheduling)
    assert "self._split_scope(nodeid)" in inspect.getsource(LoadScopeScheduling.schedule)
