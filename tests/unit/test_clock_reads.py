"""The roles, the market and the node read the time only from the clock they are given: no
call to the system clock of their own, which a `MockClock` could not move (the time test of
the roles themselves: tests/unit/roles/test_roles_client_clock.py)."""

import ast
from pathlib import Path

import pytest

import lilypad_p2p

PACKAGE = Path(lilypad_p2p.__file__).parent
CHECKED = sorted([*(PACKAGE / "roles").glob("*.py"), *(PACKAGE / "market").glob("*.py"),
                  *PACKAGE.glob("node*.py"), PACKAGE / "store.py", PACKAGE / "deal_detail.py"])
SYSTEM_CLOCKS = {"time", "time_ns", "monotonic", "monotonic_ns", "perf_counter",
                 "perf_counter_ns", "now", "utcnow", "today", "wall_clock_ms"}


def _system_clock_reads(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module in {"time", "datetime"}:
            found += [f"line {node.lineno}: from {node.module} import {a.name}"
                      for a in node.names if a.name in SYSTEM_CLOCKS | {"datetime", "date"}]
        elif isinstance(node, ast.ImportFrom):
            found += [f"line {node.lineno}: imports {a.name}"
                      for a in node.names if a.name == "wall_clock_ms"]
        elif isinstance(node, ast.Import):
            found += [f"line {node.lineno}: import {a.name}"
                      for a in node.names if a.name in {"time", "datetime"}]
    return found


@pytest.mark.parametrize("path", CHECKED, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_reads_no_system_clock(path):
    assert _system_clock_reads(path) == []


def test_the_check_finds_a_system_clock_read(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import time\nfrom lilypad_p2p.net import wall_clock_ms\n"
                      "from datetime import datetime\n")
    assert len(_system_clock_reads(module)) == 3
