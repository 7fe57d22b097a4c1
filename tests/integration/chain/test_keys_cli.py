"""`lilypad-p2p payout set|show|cancel` and `keys rotate` with an encrypted keystore, against a
real anvil."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pytest
from eth_account import Account
from typer.testing import CliRunner

from lilypad_p2p.chain import Chain, SettlementClient
from lilypad_p2p.cli import app
from lilypad_p2p.identity import KEY_FILE_NAME, Identity, Password, load_handover
from lilypad_p2p.testing import advance_chain_time

pytestmark = pytest.mark.chain

PASSWORD = "cli password"


def _runner(password_file: Path):
    env = {"LILYPAD_RPC_URL": None, "LILYPAD_CONTRACT": None, "LILYPAD_KEY_PASSWORD": None,
           "LILYPAD_KEY_PASSWORD_FILE": str(password_file)}

    def run(*args: str, ok: bool = True) -> str:
        result = CliRunner().invoke(app, list(args), env=env)
        assert (result.exit_code == 0) == ok, result.output
        return result.stdout if ok else result.output

    return run


def test_payout_and_rotation_through_the_cli(anvil_chain: Chain, tmp_path: Path) -> None:
    url = anvil_chain.w3.provider.endpoint_uri  # type: ignore[attr-defined]
    home = tmp_path / "node"
    old = Identity.generate()
    old.save(home / "keys", Password(PASSWORD), scrypt_n=1 << 12)
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    os.chmod(password_file, 0o600)
    run = _runner(password_file)
    deployed = json.loads(run("chain", "deploy", "--rpc", url, "--home", str(home), "--dev-fund",
                              "--withdraw-notice", "60", "--json"))
    run("deposit", "2eth", "--home", str(home))

    shown = json.loads(run("payout", "show", "--home", str(home), "--json"))
    assert shown["withdrawals_paid_to"] == old.address and shown["payout_address"] is None
    cold = Account.create()
    shown = json.loads(run("payout", "set", cold.address, "--home", str(home), "--json"))
    assert shown["withdrawals_paid_to"] == cold.address == shown["payout_address"]
    assert shown["change_delay_s"] == 120
    other = Account.create().address
    shown = json.loads(run("payout", "set", other, "--home", str(home), "--json"))
    assert shown["pending_change"] == other and shown["withdrawals_paid_to"] == cold.address
    assert "not an address" in run("payout", "set", "0x12", "--home", str(home), ok=False)

    # The cold wallet (a V3 key file, as geth or Foundry write it) cancels the change; it needs
    # gas, so fund it from the node's dev-funded wallet.
    anvil_chain.transact(old.eth_account(), cold.address, b"", 10**17)
    key_file = tmp_path / "cold.json"
    key_file.write_text(json.dumps(Account.encrypt(cold.key, PASSWORD, iterations=1 << 12)))
    os.chmod(key_file, 0o600)
    shown = json.loads(run("payout", "cancel", old.address, "--key-file", str(key_file),
                           "--home", str(home), "--json"))
    assert shown["pending_change"] is None and shown["withdrawals_paid_to"] == cold.address

    # A refused rotation changes no key; the staged new key is reused by the next attempt.
    as_old = SettlementClient(anvil_chain, deployed["contract"], old.eth_account())
    as_old.register_mediator(10**18)
    assert "StillMediator" in run("keys", "rotate", "--home", str(home), ok=False)
    assert Identity.load(home / "keys", Password(PASSWORD)).address == old.address
    staged = Identity.load(home / "keys" / "next", Password(PASSWORD)).address
    as_old.request_mediator_exit()
    advance_chain_time(anvil_chain, 60)
    as_old.complete_mediator_exit()

    rotated = json.loads(run("keys", "rotate", "--home", str(home), "--json"))
    assert rotated["rotated_from"] == old.address and rotated["address"] == staged
    keys = home / "keys"
    assert Identity.load(keys, Password(PASSWORD)).address == rotated["address"]
    # The retired key's hand-over, which the node puts in its NodeRecord for peers.
    assert load_handover(keys, rotated["address"])[0] == old.address
    assert Identity.load(keys / "retired" / old.address, Password(PASSWORD)).address == old.address
    assert not (keys / "next").exists()
    assert oct((keys / "retired").stat().st_mode & 0o777) == oct(0o700)
    balance = json.loads(run("balance", "--home", str(home), "--json"))
    assert (balance["address"], balance["free_wei"]) == (rotated["address"], 3 * 10**18)
    shown = json.loads(run("payout", "show", "--home", str(home), "--json"))
    assert shown["withdrawals_paid_to"] == cold.address
    old_view = json.loads(run("payout", "show", old.address, "--home", str(home), "--json"))
    assert old_view["rotated_to"] == rotated["address"]
    assert (keys / KEY_FILE_NAME).exists()


def test_a_rotation_that_cannot_start_says_what_to_do(
    anvil_chain: Chain, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = anvil_chain.w3.provider.endpoint_uri  # type: ignore[attr-defined]
    deployer = tmp_path / "deployer"
    Identity.generate().save(deployer / "keys", Password(PASSWORD), scrypt_n=1 << 12)
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    os.chmod(password_file, 0o600)
    run = _runner(password_file)
    contract = json.loads(run("chain", "deploy", "--rpc", url, "--home", str(deployer),
                              "--dev-fund", "--json"))["contract"]
    # A plaintext node whose wallet holds no ETH for gas.
    home = tmp_path / "poor"
    old = Identity.generate()
    old.save(home / "keys")
    keys, staging = home / "keys", home / "keys" / "next"
    rotate = ("keys", "rotate", "--home", str(home), "--rpc", url, "--contract", contract)

    with caplog.at_level(logging.WARNING):
        refused = run(*rotate, ok=False)
    assert f"error: {old.address} has no ETH for the rotation's gas" in refused
    # The plaintext warning is a sentence; the structured event's bare name never shows.
    assert "are stored unencrypted; run `lilypad-p2p keys encrypt`" in caplog.text
    assert all(r.getMessage() != "keys.plaintext" for r in caplog.records)
    assert Identity.load(keys).address == old.address

    shutil.rmtree(staging)
    staging.write_text("")
    assert f"{staging} is not a directory" in run(*rotate, ok=False)
    staging.unlink()
    staging.mkdir()
    (staging / KEY_FILE_NAME).write_text("{")
    os.chmod(staging / KEY_FILE_NAME, 0o600)
    refused = run(*rotate, ok=False)
    assert f"the staged next key in {staging} does not load" in refused
    assert f"delete {staging} to start over" in refused
    assert Identity.load(keys).address == old.address
