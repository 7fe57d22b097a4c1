"""wire/ and market/ are pure: importing them loads no I/O framework (DESIGN.md §2)."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import lilypad_p2p.market
import lilypad_p2p.wire

FORBIDDEN = ("trio", "libp2p", "web3", "docker")


@pytest.mark.parametrize("package", ["lilypad_p2p.wire", "lilypad_p2p.market"])
def test_importing_loads_no_io_framework(package):
    probe = (
        f"import json, sys; import {package}; "
        f"print(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))"
    )
    loaded = set(json.loads(subprocess.check_output([sys.executable, "-c", probe], text=True)))
    assert loaded.isdisjoint(FORBIDDEN), loaded & set(FORBIDDEN)


@pytest.mark.parametrize("package", [lilypad_p2p.wire, lilypad_p2p.market])
def test_public_names_exist(package):
    for name in package.__all__:
        assert hasattr(package, name), name


def _wire_imports() -> dict[str, set[str]]:
    """Each wire/ module -> the wire/ modules it imports (at any depth of its code)."""
    folder = Path(lilypad_p2p.wire.__file__).parent
    graph: dict[str, set[str]] = {}
    for path in folder.glob("*.py"):
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "lilypad_p2p.wire."
            ):
                imported.add(str(node.module).rsplit(".", 1)[1])
        graph[path.stem] = imported
    return graph


def test_wire_modules_import_one_another_without_a_cycle():
    # A cycle forces imports to the bottom of a module and breaks when either side is moved.
    graph = _wire_imports()
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import cycle in wire/: {' -> '.join((*path, module))}"
        if module in done:
            return
        for imported in graph.get(module, ()):
            visit(imported, (*path, module))
        done.add(module)

    for module in graph:
        visit(module, ())
