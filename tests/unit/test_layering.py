"""The import layering: each folder of lilypad_p2p imports only what its `__init__` docstring
says it may (its "May import ..." line), so no import runs back up a floor.

wire/ and market/ are also checked to load no I/O framework (tests/unit/wire/test_wire_purity.py).
"""

import ast
import fnmatch
import re
from pathlib import Path

import pytest

import lilypad_p2p

PACKAGE = Path(lilypad_p2p.__file__).parent
FOLDERS = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
RULE = re.compile(
    r"^May import (?:nothing from lilypad_p2p\.|from lilypad_p2p(?P<but> anything but)?: "
    r"(?P<names>[\w*]+(?:, [\w*]+)*)\.)$",
    re.MULTILINE,
)


def _rule(folder: str) -> tuple[bool, list[str]]:
    """(True, allowed) or (False, forbidden) from the folder's docstring."""
    doc = ast.get_docstring(ast.parse((PACKAGE / folder / "__init__.py").read_text())) or ""
    found = RULE.search(doc)
    assert found, f"{folder}/__init__.py: the docstring has no 'May import ...' line"
    names = found["names"].split(", ") if found["names"] else []
    return found["but"] is None, names


def _imports(folder: str) -> dict[str, set[str]]:
    """What the folder's modules import from lilypad_p2p: unit (folder or module) -> files."""
    imported: dict[str, set[str]] = {}
    for path in (PACKAGE / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == (
                "lilypad_p2p"
            ):
                parts = str(node.module).split(".")
                units = [a.name for a in node.names] if len(parts) == 1 else parts[1:2]
            elif isinstance(node, ast.Import):
                units = [a.name.split(".")[1] for a in node.names
                         if a.name.startswith("lilypad_p2p.")]
            else:
                continue
            for unit in units:
                if unit != folder:
                    imported.setdefault(unit, set()).add(str(path.relative_to(PACKAGE)))
    return imported


@pytest.mark.parametrize("folder", FOLDERS)
def test_a_folder_imports_only_what_its_docstring_allows(folder):
    only, names = _rule(folder)
    imported = _imports(folder)
    if only:
        wrong = {unit: files for unit, files in imported.items() if unit not in names}
    else:
        wrong = {unit: files for unit, files in imported.items()
                 if any(fnmatch.fnmatch(unit, pattern) for pattern in names)}
    assert not wrong, f"{folder}/ imports what its docstring forbids: {wrong}"


def test_the_rule_reads_each_form():
    doc = "For x.\nMay import from lilypad_p2p: errors, wire.\n"
    assert RULE.search(doc)["names"] == "errors, wire"
    assert RULE.search("May import from lilypad_p2p anything but: cli*, node*.")["but"]
    assert RULE.search("May import from lilypad_p2p: errors.")["but"] is None
    assert RULE.search("May import nothing from lilypad_p2p.")["names"] is None
    assert RULE.search("May import errors.") is None
