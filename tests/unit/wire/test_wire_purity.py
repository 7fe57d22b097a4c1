"""wire/ and market/ are pure: importing them loads no I/O framework (DESIGN.md §2)."""

import json
import subprocess
import sys

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
