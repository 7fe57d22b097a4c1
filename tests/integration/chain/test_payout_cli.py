"""`payout set|show|cancel`, `providers` and `balance` against a real anvil: what they refuse
before any transaction (checked on chain: nothing sent, nothing changed), and that the
`[chain]` shorthand's chain ID answers to --chain-id. tests/unit/chain/test_chain_cli_checks.py
has the refusals that need no chain."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cli_runs import one_error, run
from eth_account import Account
from eth_utils import is_checksum_address

from lilypad_p2p.chain import Chain
from lilypad_p2p.identity import Identity
from lilypad_p2p.keystore import Password
from lilypad_p2p.localnet import dev_rpc
from lilypad_p2p.testing import advance_chain_time

pytestmark = pytest.mark.chain

ETH = 10**18
NOTICE_S = 60
PASSWORD = "cold password"


def _shown(output: str) -> dict:
    return json.loads(output[output.index("{"):])


def _deployed(chain: Chain, tmp_path: Path, password: str | None = None) -> tuple[Path, str, str]:
    """A node home (plaintext keys, or encrypted under `password`) with a funded key and a
    freshly deployed contract in its `[chain]`: (home, node address, contract)."""
    home = tmp_path / "node"
    identity = Identity.generate()
    if password is None:
        identity.save(home / "keys")
    else:
        identity.save(home / "keys", Password(password), scrypt_n=1 << 4)
    dev_rpc(chain, "anvil_setBalance", [identity.address, hex(1000 * ETH)])
    url = str(chain.w3.provider.endpoint_uri)  # type: ignore[attr-defined]
    env = {} if password is None else {"LILYPAD_KEY_PASSWORD": password}
    out = run("chain", "deploy", "--rpc", url, "--home", str(home), "--withdraw-notice",
              str(NOTICE_S), "--json", env=env)
    return home, identity.address, _shown(out)["contract"]


def _sent(chain: Chain, address: str) -> int:
    return chain.w3.eth.get_transaction_count(address)  # type: ignore[arg-type]


def test_payout_set_refuses_a_mistyped_address(anvil_chain: Chain, tmp_path: Path) -> None:
    home, node, _ = _deployed(anvil_chain, tmp_path)
    at = ("--home", str(home))
    sent = _sent(anvil_chain, node)
    cold = Account.from_key(b"\x07" * 32).address  # fixed: its checksum has capitals
    # One hex digit mistyped, the rest as copied: still mixed case, its checksum now wrong.
    typo = cold[:5] + ("1" if cold[5] != "1" else "2") + cold[6:]
    assert typo[2:] not in (typo[2:].lower(), typo[2:].upper()), typo
    assert not is_checksum_address(typo), typo
    line = one_error(run("payout", "set", typo, *at, ok=False))
    assert "checksum" in line and "copy the address again" in line, line
    for no_prefix in (cold[2:], "0X" + cold[2:]):
        line = one_error(run("payout", "set", no_prefix, *at, ok=False))
        assert "0x followed by 40 hex digits" in line, line
    assert _sent(anvil_chain, node) == sent
    assert _shown(run("payout", "show", *at, "--json"))["payout_address"] is None

    # All one case has no checksum: taken as written, shown checksummed.
    shown = _shown(run("payout", "set", cold.lower(), *at, "--json"))
    assert shown["payout_address"] == cold == shown["withdrawals_paid_to"]


def test_payout_set_refuses_the_node_key_and_contracts(anvil_chain: Chain,
                                                       tmp_path: Path) -> None:
    home, node, contract = _deployed(anvil_chain, tmp_path)
    at = ("--home", str(home))
    sent = _sent(anvil_chain, node)
    line = one_error(run("payout", "set", node, *at, ok=False))
    assert "this node's own (hot) key" in line, line
    for spelled in (contract, contract.lower()):
        line = one_error(run("payout", "set", spelled, "--allow-contract", *at, ok=False))
        assert "the settlement contract itself" in line, line
    # a contract wallet (a multisig): only with --allow-contract
    multisig = Account.create().address
    dev_rpc(anvil_chain, "anvil_setCode", [multisig, "0x6000"])
    line = one_error(run("payout", "set", multisig, *at, ok=False))
    assert "holds contract code" in line and "multisig" in line, line
    assert "--allow-contract" in line, line
    assert _sent(anvil_chain, node) == sent
    assert _shown(run("payout", "show", *at, "--json"))["payout_address"] is None
    shown = _shown(run("payout", "set", multisig, "--allow-contract", *at, "--json"))
    assert shown["payout_address"] == multisig


def test_payout_set_refuses_a_repeat_of_the_pending_change(anvil_chain: Chain,
                                                           tmp_path: Path) -> None:
    home, node, _ = _deployed(anvil_chain, tmp_path)
    at = ("--home", str(home))
    cold, later = Account.create().address, Account.create().address
    run("payout", "set", cold, *at)
    sent = _sent(anvil_chain, node)
    line = one_error(run("payout", "set", cold, *at, ok=False))
    assert f"{cold} is already the payout address" in line, line
    out = run("payout", "set", later, *at, "--json")
    assert f"the change to {later} is announced and lands at" in out, out
    assert f"{cold}, which can cancel it" in out, out
    ready_at = _shown(out)["pending_ready_at"]
    assert _sent(anvil_chain, node) == sent + 1
    advance_chain_time(anvil_chain, 10)
    line = one_error(run("payout", "set", later, *at, ok=False))
    assert f"a change to {later} is already pending, lands at" in line, line
    assert _sent(anvil_chain, node) == sent + 1
    assert _shown(run("payout", "show", *at, "--json"))["pending_ready_at"] == ready_at


def _cold_keys(chain: Chain, tmp_path: Path, *names: str) -> tuple[Path, dict]:
    """A password file, and per name a funded account with its V3 key file under it."""
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    os.chmod(password_file, 0o600)
    keys = {}
    for name in names:
        account = Account.create()
        dev_rpc(chain, "anvil_setBalance", [account.address, hex(ETH)])
        key_file = tmp_path / f"{name}.json"
        key_file.write_text(json.dumps(Account.encrypt(account.key, PASSWORD, iterations=1 << 4)))
        os.chmod(key_file, 0o600)
        keys[name] = (account, key_file)
    return password_file, keys


def test_payout_cancel_by_another_key_says_who_can(anvil_chain: Chain, tmp_path: Path) -> None:
    home, node, _ = _deployed(anvil_chain, tmp_path)
    password_file, keys = _cold_keys(anvil_chain, tmp_path, "cold", "stranger")
    (cold, cold_file), (stranger, stranger_file) = keys["cold"], keys["stranger"]
    cancel = ("payout", "cancel", node, "--password-file", str(password_file), "--home",
              str(home))
    run("payout", "set", cold.address, "--home", str(home))
    run("payout", "set", Account.create().address, "--home", str(home))
    line = one_error(run(*cancel, "--key-file", str(stranger_file), ok=False))
    assert f"only {node}'s payout address {cold.address} can cancel" in line, line
    assert stranger.address in line and "NotPayoutAddress" not in line, line
    assert _sent(anvil_chain, stranger.address) == 0
    shown = _shown(run(*cancel, "--key-file", str(cold_file), "--json"))
    assert shown["pending_change"] is None and shown["withdrawals_paid_to"] == cold.address


def test_payout_cancel_with_nothing_to_cancel(anvil_chain: Chain, tmp_path: Path) -> None:
    home, node, _ = _deployed(anvil_chain, tmp_path)
    password_file, keys = _cold_keys(anvil_chain, tmp_path, "cold")
    cold, cold_file = keys["cold"]
    cancel = ("payout", "cancel", node, "--key-file", str(cold_file), "--password-file",
              str(password_file), "--home", str(home))
    run("payout", "set", cold.address, "--home", str(home))
    line = one_error(run(*cancel, ok=False))
    assert f"no payout address change is pending for {node}: nothing to cancel" in line, line
    later = Account.create().address
    ready_at = _shown(run("payout", "set", later, "--home", str(home), "--json"))[
        "pending_ready_at"]
    advance_chain_time(anvil_chain, ready_at - anvil_chain.now() + 1)
    line = one_error(run(*cancel, ok=False))
    assert f"the change to {later} landed at" in line and "too late" in line, line
    assert _sent(anvil_chain, cold.address) == 0


def test_payout_show_and_balance_need_no_key(anvil_chain: Chain, tmp_path: Path) -> None:
    home, node, _ = _deployed(anvil_chain, tmp_path, password="node password")
    at = ("--home", str(home))
    other = Account.create().address
    for account in (other, "0x" + "00" * 20):
        out = run("payout", "show", account, *at)
        assert f"withdrawals_paid_to {account}" in out and "warning" not in out, out
        assert _shown(run("balance", account, *at, "--json"))["address"] == account
    # this node's own view reads its address from the encrypted key file, with no password,
    # and warns without a payout address
    out = run("payout", "show", *at)
    assert f"account             {node}" in out, out
    assert "warning: no payout address: withdrawals go to the node key itself" in out, out
    assert _shown(run("balance", *at, "--json"))["address"] == node
    line = one_error(run("balance", node[:-1], *at, ok=False))
    assert "not an address" in line and "ACCOUNT" in line, line


def test_the_chain_shorthand_answers_to_its_chain_id(anvil_chain: Chain, tmp_path: Path) -> None:
    home, node, _ = _deployed(anvil_chain, tmp_path)
    at = ("--home", str(home))
    chain_id = str(anvil_chain.chain_id)
    assert _shown(run("balance", "--chain-id", chain_id, *at, "--json"))["address"] == node
    assert _shown(run("providers", "--chain-id", chain_id, *at, "--json"))["providers"] == []
    assert _shown(run("payout", "show", "--chain-id", chain_id, *at, "--json"))["account"] == node
    for command in (("balance",), ("providers",), ("payout", "show")):
        line = one_error(run(*command, "--chain-id", "5", *at, ok=False))
        assert f"is chain {chain_id}: give --chain-id {chain_id}" in line, line
        assert "None" not in line, line


def test_providers_refuses_a_from_block_past_the_head(anvil_chain: Chain,
                                                      tmp_path: Path) -> None:
    home, _, _ = _deployed(anvil_chain, tmp_path)
    head = anvil_chain.block_number()
    for block in (head + 1, 10**30):
        line = one_error(run("providers", "--from-block", str(block), "--home", str(home),
                          ok=False))
        assert line == (f"error: --from-block {block} is past the chain head ({head}): give at "
                        f"most {head}, or leave it out to replay from block 0"), line
    out = run("providers", "--from-block", str(head), "--home", str(home))
    assert f"up to block {head}" in out, out
