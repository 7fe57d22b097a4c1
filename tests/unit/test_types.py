"""The type check: the pinned mypy over lilypad_p2p, strict for wire/ and market/.

The settings live in pyproject.toml ([tool.mypy]); run this file to see every error.
"""

import io
from pathlib import Path

import outcome
import pytest
import trio
from mypy import api
from mypy.config_parser import parse_config_file
from mypy.main import define_options
from mypy.options import PER_MODULE_OPTIONS, Options

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".mypy_cache"


def _inline_types_first() -> Path:
    """A directory that puts trio's and outcome's own inline types on MYPYPATH.

    libp2p needs trio-typing, which installs stubs of trio 0.21 (no `trio.TaskStatus`, no
    `abandon_on_cancel`); mypy prefers stub packages to a package's inline types, so without
    this our code would be checked against a trio we do not run. MYPYPATH comes before stub
    packages. The path is stable so that mypy's cache survives between runs.
    """
    shadow = CACHE / "inline-types"
    shadow.mkdir(parents=True, exist_ok=True)
    for module in (trio, outcome):
        link = shadow / module.__name__
        target = Path(module.__file__).parent
        if link.is_symlink() and link.readlink() == target:
            continue
        link.unlink(missing_ok=True)
        link.symlink_to(target, target_is_directory=True)
    return shadow


def test_lilypad_p2p_passes_mypy(monkeypatch):
    monkeypatch.setenv("MYPYPATH", str(_inline_types_first()))
    monkeypatch.chdir(REPO)
    report, errors, status = api.run(
        ["--config-file", str(REPO / "pyproject.toml"), "--cache-dir", str(CACHE)]
    )
    assert status == 0, (
        "mypy found type errors (pytest -q tests/unit/test_types.py; settings in "
        f"pyproject.toml [tool.mypy]):\n{report}{errors}"
    )


@pytest.mark.parametrize("module", ["lilypad_p2p.wire._codec", "lilypad_p2p.market._matching"])
def test_wire_and_market_get_every_flag_of_strict(module):
    # `strict = true` cannot be set per module (it turns the flags on everywhere), so the
    # override lists them; this keeps the list equal to what this mypy's --strict sets.
    _, _, strict_flags = define_options()
    options = Options()
    parse_config_file(options, lambda: None, str(REPO / "pyproject.toml"), io.StringIO(),
                      io.StringIO())
    checked = options.clone_for_module(module)
    missing = [flag for flag, value in strict_flags
               if flag in PER_MODULE_OPTIONS and getattr(checked, flag) != value]
    assert missing == [], f"{module} is not checked with {missing} (pyproject.toml [tool.mypy])"
