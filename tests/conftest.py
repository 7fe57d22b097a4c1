import os

import pytest
from hypothesis import settings

settings.register_profile("ci", max_examples=200, deadline=None)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

# scripts/test runs the suite in two pytest-xdist workers (`--dist loadgroup`), test by test.
# Tests under one of these paths share one worker, one after another:
# - "namespaces": network-namespace labs pick a free 10.x subnet by looking at the root
#   namespace, which two labs built at once could both pick; the simnet's runs also each load
#   the machine with a dozen or more nodes, more than one of which at a time would outlast
#   timeouts sized for one.
# - a file whose fixtures outlive one test (module scope) keeps them in one worker, rather than
#   building them once in each.
SERIAL_GROUPS = {
    "namespaces": ("tests/integration/nat/", "tests/integration/simnet/",
                   "tests/integration/exec/test_exec_outputs_bound.py"),
}
FILE_GROUPS = ("tests/integration/hostile/", "tests/integration/roles/test_mediation_consortium.py",
               "tests/unit/net/test_net_validation.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        group = next((name for name, prefixes in SERIAL_GROUPS.items()
                      if path.startswith(prefixes)), None)
        if group is None and path.startswith(FILE_GROUPS):
            group = path
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
