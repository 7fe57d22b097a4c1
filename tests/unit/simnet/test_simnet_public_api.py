"""The simnet is a user of the package: it imports only public names of lilypad_p2p, never its
test helpers; the local network it builds on loads no test framework, and `lilypad-p2p devnet`
loads that network only to start one (`status` and `down` stay quick)."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import lilypad_p2p.localnet

SIMNET = Path(__file__).parents[3] / "simnet"


def _lilypad_imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) of every `import lilypad_p2p...` / `from lilypad_p2p... import name`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lilypad_p2p"):
            found += [(node.module or "", alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names
                      if alias.name.startswith("lilypad_p2p")]
    return found


def test_the_simnet_imports_only_public_names_and_no_test_helpers():
    offending = [
        f"{path.name}: {module} {name}".strip()
        for path in sorted(SIMNET.glob("*.py"))
        for module, name in _lilypad_imports(path)
        if any(part.startswith("_") for part in module.split("."))
        or name.startswith("_") or module.split(".")[:2] == ["lilypad_p2p", "testing"]
    ]
    assert not offending, offending
    assert any(_lilypad_imports(path) for path in SIMNET.glob("*.py"))


def _loaded_by(module: str) -> list[str]:
    probe = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    return json.loads(subprocess.check_output([sys.executable, "-c", probe], text=True))


def test_the_localnet_loads_no_test_framework():
    tests_only = [m for m in _loaded_by("lilypad_p2p.localnet")
                  if m.split(".")[0] in ("pytest", "_pytest")
                  or m.startswith("lilypad_p2p.testing")]
    assert not tests_only, tests_only


def test_the_devnet_command_loads_the_chain_libraries_only_to_start_one():
    heavy = [m for m in _loaded_by("lilypad_p2p.devnet")
             if m.split(".")[0] in ("web3", "eth_account") or m.startswith("lilypad_p2p.localnet")]
    assert not heavy, heavy


def test_the_localnet_public_names_exist():
    for name in lilypad_p2p.localnet.__all__:
        assert hasattr(lilypad_p2p.localnet, name), name
