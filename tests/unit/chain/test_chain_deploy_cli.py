"""`chain deploy` and `deploy-requests` without a chain: what they refuse before sending
anything, and where they record what they deployed (`[chain]`, a `[[chains]]` entry, or words
saying what to add). The chain is a stand-in here; tests/integration/chain/
test_chain_cli_safety.py runs the same commands against anvil."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

import lilypad_p2p.chain
from lilypad_p2p import cli_deploy
from lilypad_p2p.cli import app

URL = "http://127.0.0.1:8545"
OTHER_URL = "http://127.0.0.1:9545"
SETTLEMENT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
REQUESTS = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
OLD = "0x" + "00" * 19 + "01"
MAX_STAKE = (1 << 128) - 1


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """A stand-in chain (id 31337): what was deployed, with its arguments, in order."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(cli_deploy, "_node_account", lambda config, password_file: object())
    monkeypatch.setattr(cli_deploy, "_open_chain",
                        lambda rpc, account, dev_fund: SimpleNamespace(chain_id=31337, rpc=rpc))

    def settlement(chain: Any, account: Any, **how: Any) -> str:
        calls.append({"what": "settlement", "rpc": chain.rpc, **how})
        return SETTLEMENT

    def requests(chain: Any, account: Any, settlement: str) -> str:
        calls.append({"what": "requests", "rpc": chain.rpc, "settlement": settlement})
        return REQUESTS

    class Settlement:
        def __init__(self, chain: Any, address: str) -> None:
            pass

        def require_deployed(self) -> None:
            pass

    monkeypatch.setattr(lilypad_p2p.chain, "deploy_settlement", settlement)
    monkeypatch.setattr(lilypad_p2p.chain, "deploy_requests", requests)
    monkeypatch.setattr(lilypad_p2p.chain, "SettlementClient", Settlement)
    return calls


def run(home: Path, *args: str, code: int = 0) -> str:
    env = {"LILYPAD_RPC_URL": None, "LILYPAD_CONTRACT": None, "LILYPAD_REQUESTS_CONTRACT": None}
    result = CliRunner().invoke(app, [*args, "--home", str(home)], env=env)
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.output


def chains(home: Path, *entries: tuple[int, str, str]) -> str:
    text = "# my chains\n" + "".join(
        f'\n[[chains]]\nchain_id = {chain_id}\nrpc_url = "{url}"\ncontract = "{contract}"\n'
        for chain_id, url, contract in entries)
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text(text)
    return text


@pytest.mark.parametrize("stake", [str(MAX_STAKE + 1), str(1 << 200), "1000000000000000000000eth"])
def test_deploy_refuses_a_minimum_stake_no_mediator_could_lock(tmp_path: Path, deployed: list,
                                                               stake: str) -> None:
    output = run(tmp_path, "chain", "deploy", "--rpc", URL, "--min-mediator-stake", stake,
                 code=1)
    assert output.splitlines() == [
        f"error: --min-mediator-stake {stake}: give at most {MAX_STAKE} wei (2^128 − 1, the "
        "largest stake the contract holds: above it no mediator could ever register); it is "
        "final for the contract's life"]
    assert deployed == [] and not (tmp_path / "config.toml").exists()


def test_deploy_takes_the_largest_stake_the_contract_holds(tmp_path: Path,
                                                           deployed: list) -> None:
    run(tmp_path, "chain", "deploy", "--rpc", URL, "--min-mediator-stake", str(MAX_STAKE))
    assert deployed[0]["min_mediator_stake"] == MAX_STAKE


def test_deploy_through_a_symlinked_config_edits_the_file_it_names(tmp_path: Path,
                                                                   deployed: list) -> None:
    home, dotfiles = tmp_path / "home", tmp_path / "dotfiles"
    home.mkdir()
    dotfiles.mkdir()
    (dotfiles / "lilypad.toml").write_text('roles = ["provider"]\n')
    (dotfiles / "lilypad.toml").chmod(0o644)
    (home / "config.toml").symlink_to(dotfiles / "lilypad.toml")
    run(home, "chain", "deploy", "--rpc", URL)
    assert (home / "config.toml").is_symlink()
    assert tomllib.loads((dotfiles / "lilypad.toml").read_text()) == {
        "roles": ["provider"], "chain": {"rpc_url": URL, "contract": SETTLEMENT}}
    assert (dotfiles / "lilypad.toml").stat().st_mode & 0o777 == 0o644


def test_deploy_records_in_the_chains_entry_that_is_this_chain(tmp_path: Path,
                                                               deployed: list) -> None:
    chains(tmp_path, (31338, OTHER_URL, OLD), (31337, URL, OLD))
    output = run(tmp_path, "chain", "deploy", "--rpc", URL)
    assert deployed[0]["rpc"] == URL
    assert output.splitlines()[-1] == (
        f"deployed LilypadSettlement at {SETTLEMENT} on chain 31337; recorded in chain 31337's "
        f"[[chains]] entry in {tmp_path / 'config.toml'}")
    text = (tmp_path / "config.toml").read_text()
    assert text.startswith("# my chains\n") and "[chain]" not in text
    assert [entry["contract"] for entry in tomllib.loads(text)["chains"]] == [OLD, SETTLEMENT]


def test_deploy_to_a_chain_not_listed_says_which_entry_to_add(tmp_path: Path,
                                                              deployed: list) -> None:
    text = chains(tmp_path, (31338, OTHER_URL, OLD))
    output = run(tmp_path, "chain", "deploy", "--rpc", URL)
    assert output.splitlines()[-5:] == [
        f"deployed LilypadSettlement at {SETTLEMENT} on chain 31337; {tmp_path / 'config.toml'} "
        "lists [[chains]], none of them chain 31337: add this entry to it",
        "[[chains]]", "chain_id = 31337", f'rpc_url = "{URL}"', f'contract = "{SETTLEMENT}"']
    assert (tmp_path / "config.toml").read_text() == text
    output = run(tmp_path, "chain", "deploy", "--rpc", URL, "--json")
    assert json.loads(output[output.index("{"):]) == {
        "contract": SETTLEMENT, "chain_id": 31337, "config": None}


def test_deploy_to_a_listed_chain_at_another_url_leaves_the_entry_alone(
        tmp_path: Path, deployed: list) -> None:
    text = chains(tmp_path, (31337, OTHER_URL, OLD))
    output = run(tmp_path, "chain", "deploy", "--rpc", URL)
    assert output.splitlines()[-1] == (
        f"deployed LilypadSettlement at {SETTLEMENT} on chain 31337; {tmp_path / 'config.toml'} "
        f"has chain 31337 at {OTHER_URL}, not {URL}: if that is this chain, set "
        f'contract = "{SETTLEMENT}" in its [[chains]] entry')
    assert (tmp_path / "config.toml").read_text() == text


def test_a_config_deploy_cannot_edit_is_one_line_with_the_address(tmp_path: Path,
                                                                  deployed: list) -> None:
    text = f'chain.contract = "{OLD}"\n'  # a dotted key: no [chain] line to edit
    (tmp_path / "config.toml").write_text(text)
    output = run(tmp_path, "chain", "deploy", "--rpc", URL, code=1)
    line = output.splitlines()[-1]
    assert line.startswith(f"error: deployed LilypadSettlement at {SETTLEMENT} on chain 31337, "
                           "but could not record it: "), line
    assert line.endswith(f'put rpc_url = "{URL}", contract = "{SETTLEMENT}" in [chain] '
                         "yourself"), line
    assert (tmp_path / "config.toml").read_text() == text


def test_deploy_requests_records_in_the_chains_entry_chain_id_names(tmp_path: Path,
                                                                    deployed: list) -> None:
    chains(tmp_path, (31338, OTHER_URL, OLD), (31337, URL, SETTLEMENT))
    output = run(tmp_path, "chain", "deploy-requests", "--chain-id", "31337")
    assert deployed == [{"what": "requests", "rpc": URL, "settlement": SETTLEMENT}]
    assert output.splitlines()[-1] == (
        f"recorded as requests of chain 31337's [[chains]] entry in {tmp_path / 'config.toml'}")
    entries = tomllib.loads((tmp_path / "config.toml").read_text())["chains"]
    assert ["requests" in entry for entry in entries] == [False, True]
    assert entries[1]["requests"] == REQUESTS
