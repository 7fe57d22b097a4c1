"""Each module of the package and the simnet stays small enough to read whole: at most 600
lines. A module that outgrows it is doing two jobs; split it by responsibility."""

from pathlib import Path

import lilypad_p2p

MAX_LINES = 600
ROOTS = [Path(lilypad_p2p.__file__).parent, Path(__file__).parents[2] / "simnet"]


def test_no_module_is_over_600_lines():
    modules = [path for root in ROOTS for path in root.rglob("*.py")]
    assert len(modules) > 100  # both trees were found
    too_long = {str(path): n for path in modules
                if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not too_long, f"split these modules (lines): {too_long}"
