"""Recording the deployed contract in config.toml keeps everything else intact."""

from __future__ import annotations

import tomllib
from pathlib import Path

from lilypad_p2p.chain import record_chain_settings
from lilypad_p2p.config import load_config

ADDRESS = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def test_creates_the_file(tmp_path: Path) -> None:
    path = tmp_path / "home" / "config.toml"
    record_chain_settings(path, {"contract": ADDRESS})
    assert tomllib.loads(path.read_text()) == {"chain": {"contract": ADDRESS}}


def test_updates_chain_table_and_keeps_comments(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '# my node\nroles = ["provider"]\n\n[chain]\n# local anvil\n'
        'rpc_url = "http://127.0.0.1:1"\ncontract = "0x0000000000000000000000000000000000000001"\n'
    )
    record_chain_settings(path, {"contract": ADDRESS, "rpc_url": "http://127.0.0.1:8545"})
    text = path.read_text()
    assert "# my node" in text and "# local anvil" in text
    assert tomllib.loads(text) == {
        "roles": ["provider"],
        "chain": {"rpc_url": "http://127.0.0.1:8545", "contract": ADDRESS},
    }
    config = load_config(home=tmp_path, environ={})
    assert (config.contract, config.rpc_url) == (ADDRESS, "http://127.0.0.1:8545")


def test_adds_keys_before_the_next_table(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[chain]\nrpc_url = "http://127.0.0.1:8545"\n\n[other]\nx = 1\n')
    record_chain_settings(path, {"contract": ADDRESS})
    assert tomllib.loads(path.read_text()) == {
        "chain": {"rpc_url": "http://127.0.0.1:8545", "contract": ADDRESS},
        "other": {"x": 1},
    }
