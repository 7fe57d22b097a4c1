import logging
import os

import pytest
from hypothesis import settings

settings.register_profile("ci", max_examples=200, deadline=None)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

# scripts/test runs the suite in two pytest-xdist workers, test by test, except that the tests
# under one of these paths share one worker, one after another:
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


class _WithFields(logging.Formatter):
    """pytest's log format, followed by an event's structured fields (`logs.event`), which
    its format string cannot name: records without them would not format."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        text = self._inner.format(record)
        fields = getattr(record, "fields", None)
        return f"{text} {fields}" if fields else text


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """A failed test's captured log shows why each event happened (its `error` field)."""
    plugin = config.pluginmanager.get_plugin("logging-plugin")
    if plugin is not None:
        for handler in (plugin.report_handler, plugin.caplog_handler):
            handler.setFormatter(_WithFields(plugin.formatter))


def worker_group(nodeid: str) -> str:
    """The unit of work a test belongs to: its group, else the test alone."""
    path = nodeid.split("::", 1)[0]
    group = next((name for name, prefixes in SERIAL_GROUPS.items()
                  if path.startswith(prefixes)), None)
    if group is None and path.startswith(FILE_GROUPS):
        group = path
    return group or nodeid


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """xdist's own grouping (`xdist_group` marks, --dist loadgroup) renames a test's node ID,
    which pytest 9 no longer lets a plugin do: it never groups. Its scope scheduler, given our
    groups as scopes, does (a group is handed to one worker whole, the largest first)."""
    from xdist.scheduler import LoadScopeScheduling

    if config.getvalue("dist") not in ("load", "loadgroup"):
        return None  # another mode asked for by name (--dist each, loadfile...): xdist's own

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return worker_group(nodeid)

    return GroupScheduling(config, log)
