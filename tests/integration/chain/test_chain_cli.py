"""`lilypad-p2p chain deploy | deposit | withdraw | balance` against a real anvil."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lilypad_p2p.chain import Chain
from lilypad_p2p.cli import app
from lilypad_p2p.identity import Identity
from lilypad_p2p.testing import advance_chain_time

pytestmark = pytest.mark.chain

NOTICE_S = 60


def run(*args: str, ok: bool = True) -> str:
    clean_env = {"LILYPAD_RPC_URL": None, "LILYPAD_CONTRACT": None}  # None: unset
    result = CliRunner().invoke(app, list(args), env=clean_env)
    assert (result.exit_code == 0) == ok, result.output
    return result.stdout if ok else result.output  # notes go to stderr, JSON to stdout


def test_deploy_deposit_withdraw_balance(anvil_chain: Chain, tmp_path: Path) -> None:
    url = anvil_chain.w3.provider.endpoint_uri  # type: ignore[attr-defined]
    home = tmp_path / "node"
    Identity.generate().save(home / "keys")
    out = json.loads(run("chain", "deploy", "--rpc", url, "--home", str(home), "--dev-fund",
                         "--withdraw-notice", str(NOTICE_S), "--json"))
    config = tomllib.loads((home / "config.toml").read_text())
    assert config["chain"] == {"rpc_url": url, "contract": out["contract"]}

    # rpc and contract now come from config.toml
    after_deposit = json.loads(run("deposit", "1.5eth", "--home", str(home), "--json"))
    assert (after_deposit["free_wei"], after_deposit["locked_wei"]) == (15 * 10**17, 0)
    pending = json.loads(run("withdraw", "1000gwei", "--home", str(home), "--json"))
    assert pending["withdraw_requested_wei"] == 10**12
    assert "ready at" in run("withdraw", "--complete", "--home", str(home), ok=False)
    advance_chain_time(anvil_chain, NOTICE_S)
    done = json.loads(run("withdraw", "--complete", "--home", str(home), "--json"))
    assert (done["free_wei"], done["withdraw_requested_wei"]) == (15 * 10**17 - 10**12, 0)
    assert "locked in deals" in run("balance", "--home", str(home))


def test_cli_refuses_bad_input(tmp_path: Path) -> None:
    home = tmp_path / "node"
    Identity.generate().save(home / "keys")
    assert "--rpc" in run("balance", "--home", str(home), ok=False)
    assert "not an amount" in run("deposit", "1.5 btc", "--home", str(home), "--rpc",
                                  "http://127.0.0.1:9", "--contract", "0x" + "11" * 20, ok=False)
    assert "--complete" in run("withdraw", "--home", str(home), ok=False)
