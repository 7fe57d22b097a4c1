"""What `payout`, `providers` and `balance` refuse before anything reaches a chain, in one line:
an address that is not one (no 0x, a wrong EIP-55 checksum), a key file that is not a V3
keystore, an option that is not a URL, a --chain-id or --from-block the chain does not have.
The chain is a stand-in here (or absent); tests/integration/chain/test_payout_cli.py runs the
commands against anvil."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

import lilypad_p2p.chain._keys
from lilypad_p2p.chain import AccountBalance
from lilypad_p2p.chain._errors import revert_error
from lilypad_p2p.chain._keys import PayoutState
from lilypad_p2p.cli import app
from lilypad_p2p.identity import Identity, Password

URL = "http://127.0.0.1:8545"
SETTLEMENT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
# A checksummed address, the same with one digit mistyped (still mixed case), and its
# lowercase spelling (no checksum at all).
GOOD = "0x8ba1f109551bD432803012645Ac136ddd64DBA72"
TYPO = "0x8ba1f109551bD432803012645Ac136ddd64DBA73"
LOWER = GOOD.lower()
HEAD = 8


def run(*args: str, code: int = 0) -> str:
    env = {"LILYPAD_RPC_URL": None, "LILYPAD_CONTRACT": None, "LILYPAD_KEY_PASSWORD": None,
           "LILYPAD_KEY_PASSWORD_FILE": None}
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.output


def error(*args: str) -> str:
    """The one line a refused command prints."""
    lines = [line for line in run(*args, code=1).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A node home with a plaintext key and the `[chain]` shorthand, as the devnet writes."""
    home = tmp_path / "node"
    Identity.generate().save(home / "keys")
    (home / "config.toml").write_text(f'[chain]\nrpc_url = "{URL}"\ncontract = "{SETTLEMENT}"\n')
    return home


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """A chain with ID 31337 at head block HEAD, with an empty settlement contract; the
    providers replays asked for."""
    replays: list[Any] = []

    class Settlement:
        def __init__(self, chain: Any, address: str, account: Any = None) -> None:
            self.chain, self.address, self.account = chain, address, account

        def require_deployed(self) -> None:
            pass

        def balance(self, address: str | None = None) -> AccountBalance:
            return AccountBalance(5, 0, 0, 0)

    def replay(chain: Any, contract: str, *, from_block: int) -> tuple[dict, int]:
        replays.append(from_block)
        return {}, HEAD

    chain = SimpleNamespace(chain_id=31337, block_number=lambda: HEAD, balance_of=lambda a: 0)
    monkeypatch.setattr(lilypad_p2p.chain, "open_rpc_chain", lambda url: chain)
    monkeypatch.setattr(lilypad_p2p.chain, "SettlementClient", Settlement)
    monkeypatch.setattr(lilypad_p2p.chain, "read_track_records", replay)
    return replays


@pytest.mark.parametrize("address", [
    TYPO,                                        # one digit wrong: the checksum catches it
    TYPO[:2] + TYPO[2:].swapcase(),              # mixed case, wrong either way
])
def test_payout_set_refuses_a_wrong_checksum(home: Path, address: str) -> None:
    line = error("payout", "set", address, "--home", str(home))
    assert "checksum" in line and "does not match" in line and "copy the address again" in line


@pytest.mark.parametrize("address", [GOOD[2:], "0X" + GOOD[2:], " " + GOOD, GOOD + "00", "0x12"])
def test_payout_set_requires_0x_and_40_hex_digits(home: Path, address: str) -> None:
    line = error("payout", "set", address, "--home", str(home))
    assert "is not an address" in line and "0x followed by 40 hex digits" in line, line


@pytest.mark.parametrize("address", [GOOD, LOWER, "0x" + GOOD[2:].upper()])
def test_payout_set_takes_a_checksummed_or_one_case_address(home: Path, address: str) -> None:
    # Without a chain the command gets as far as asking for one: the address passed.
    (home / "config.toml").write_text("")
    line = error("payout", "set", address, "--home", str(home))
    assert "no chain: give --rpc URL" in line, line


def test_payout_show_and_cancel_refuse_a_non_address_in_words(home: Path) -> None:
    for args in (("payout", "show", "0x1234"), ("payout", "cancel", "0x1234", "--key-file", "k")):
        line = error(*args, "--home", str(home))
        assert line == ("error: '0x1234' is not an address: give ACCOUNT as 0x followed by 40 "
                        "hex digits"), line
    line = error("payout", "show", TYPO, "--home", str(home))
    assert "checksum" in line, line


def test_payout_show_needs_no_key_and_warns_only_for_this_node(
    tmp_path: Path, stand_in: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "locked"
    node = Identity.generate()
    node.save(home / "keys", Password("pw"), scrypt_n=1 << 4)
    (home / "config.toml").write_text(f'[chain]\nrpc_url = "{URL}"\ncontract = "{SETTLEMENT}"\n')
    looked_up: list[str] = []

    def state(client: Any, account: str) -> PayoutState:
        looked_up.append(account)
        return PayoutState(account, account, None, None, 0, 120, None)

    monkeypatch.setattr(lilypad_p2p.chain._keys, "payout_state", state)
    output = run("payout", "show", LOWER, "--home", str(home))
    assert looked_up == [GOOD] and f"account             {GOOD}" in output, output
    assert "warning" not in output, output
    # this node's own account is read from its key file with no password, and warned about
    own = run("payout", "show", "--home", str(home))
    assert looked_up[-1] == node.address and "warning: no payout address" in own, own


@pytest.mark.parametrize("content", ["{}", '{"version": 3}', "[]", "not json",
                                     '{"version": 1, "secp256k1_private_key": "00"}'])
def test_payout_cancel_checks_the_key_file_format_before_the_password(
    home: Path, tmp_path: Path, content: str
) -> None:
    key_file = tmp_path / "cold.json"
    key_file.write_text(content)
    key_file.chmod(0o600)
    line = error("payout", "cancel", GOOD, "--key-file", str(key_file), "--home", str(home))
    assert f"--key-file {key_file} is not a V3 keystore" in line, line
    assert "encrypted" not in line and "password" not in line, line


def test_an_rpc_error_names_the_option_as_typed(home: Path) -> None:
    for command in (("providers",), ("balance",), ("payout", "show")):
        line = error(*command, "--rpc", "notaurl", "--home", str(home))
        assert "(--rpc)" in line and "--rpc-url" not in line and "notaurl" in line, line


def test_only_commands_that_unlock_the_key_offer_a_password_option() -> None:
    for command in (("providers",), ("balance",), ("payout", "show")):
        assert "--password-file" not in run(*command, "--help")
        assert "No such option" in run(*command, "--password-file", "pw", code=2)
    assert "--password-file" in run("deposit", "--help")


def test_chain_id_with_the_chain_shorthand_is_checked_against_the_rpc(
    home: Path, stand_in: list[Any]
) -> None:
    shown = json.loads(run("balance", "--chain-id", "31337", "--home", str(home), "--json"))
    assert shown["free_wei"] == 5
    assert "no deals" in run("providers", "--chain-id", "31337", "--home", str(home))
    for command in (("balance",), ("providers",), ("payout", "show")):
        line = error(*command, "--chain-id", "5", "--home", str(home))
        assert line == (f"error: --chain-id 5: the chain at {URL} is chain 31337: give "
                        "--chain-id 31337, or --rpc the URL of chain 5"), line


def test_chain_id_not_in_the_chains_list_names_the_list(home: Path, stand_in: list[Any]) -> None:
    (home / "config.toml").write_text(
        f'[[chains]]\nchain_id = 31337\nrpc_url = "{URL}"\ncontract = "{SETTLEMENT}"\n'
        f'[[chains]]\nchain_id = 31338\nrpc_url = "{URL}"\ncontract = "{SETTLEMENT}"\n')
    line = error("balance", "--chain-id", "5", "--home", str(home))
    assert "31337, 31338" in line and "None" not in line, line
    # an entry whose URL answers as another chain
    line = error("providers", "--chain-id", "31338", "--home", str(home))
    assert "entry for chain 31338" in line and "is chain 31337" in line, line
    assert "no deals" in run("providers", "--home", str(home))


@pytest.mark.parametrize("block", [HEAD + 1, 10**30])
def test_providers_refuses_a_from_block_past_the_head(
    home: Path, stand_in: list[Any], block: int
) -> None:
    line = error("providers", "--from-block", str(block), "--home", str(home))
    assert line.startswith(f"error: --from-block {block} is past the chain head ({HEAD})"), line
    assert stand_in == []
    run("providers", "--from-block", str(HEAD), "--home", str(home))
    assert stand_in == [HEAD]


def test_payout_reverts_read_as_words() -> None:
    # What a race past the checks (the state changed in between) would show.
    message = str(revert_error("NotPayoutAddress", {"caller": GOOD, "payout": SETTLEMENT}))
    assert message.startswith(f"only the payout address {SETTLEMENT} can cancel the change, "
                              f"not {GOOD}: give the key file of {SETTLEMENT}"), message
    assert str(revert_error("NoPayoutChange")).startswith("no payout address change is pending")
