"""The money commands refuse, before any transaction, what cannot work, and say why in one line:
a wrong contract address, a broke key, a withdrawal that would change nothing, an absurd notice.
Run against a real anvil; every refusal is checked on chain (no transaction, no ETH moved)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_runs import one_error, run

from lilypad_p2p.chain import Chain
from lilypad_p2p.identity import Identity
from lilypad_p2p.keystore import Password
from lilypad_p2p.localnet import dev_rpc
from lilypad_p2p.testing import advance_chain_time

pytestmark = pytest.mark.chain

NOTICE_S = 60
ETH = 10**18
NOT_CONTRACTS = ("0x" + "00" * 19 + "01", "0x" + "00" * 19 + "02")


def _url(chain: Chain) -> str:
    return str(chain.w3.provider.endpoint_uri)  # type: ignore[attr-defined]


def _node(chain: Chain, tmp_path: Path, *, funded: bool = True) -> tuple[Path, str]:
    home = tmp_path / "node"
    identity = Identity.generate()
    identity.save(home / "keys")
    if funded:
        dev_rpc(chain, "anvil_setBalance", [identity.address, hex(1000 * ETH)])
    return home, identity.address


def _deployed(chain: Chain, tmp_path: Path) -> tuple[Path, str]:
    home, address = _node(chain, tmp_path)
    run("chain", "deploy", "--rpc", _url(chain), "--home", str(home),
        "--withdraw-notice", str(NOTICE_S))
    return home, address


def _sent(chain: Chain, address: str) -> int:
    return chain.w3.eth.get_transaction_count(address)  # type: ignore[arg-type]


def test_a_non_contract_address_gets_no_money(anvil_chain: Chain, tmp_path: Path) -> None:
    home, address = _node(anvil_chain, tmp_path)
    url = _url(anvil_chain)
    before = {a: anvil_chain.balance_of(a) for a in (address, *NOT_CONTRACTS)}
    for args in (("deposit", "1eth"), ("withdraw", "1eth"), ("withdraw", "--complete"),
                 ("balance",), ("chain", "deploy-requests")):
        for target in NOT_CONTRACTS:
            line = one_error(run(*args, "--home", str(home), "--rpc", url, "--contract", target,
                              ok=False))
            assert target in line.lower() and "--contract" in line, line
    assert {a: anvil_chain.balance_of(a) for a in before} == before
    assert _sent(anvil_chain, address) == 0


def test_chain_errors_are_words_with_what_to_do(anvil_chain: Chain, tmp_path: Path) -> None:
    broke_home, broke = _node(anvil_chain, tmp_path / "broke", funded=False)
    line = one_error(run("chain", "deploy", "--rpc", _url(anvil_chain), "--home", str(broke_home),
                      ok=False))
    assert broke in line and "fund" in line and "--dev-fund" in line, line

    home, address = _deployed(anvil_chain, tmp_path)
    sent = _sent(anvil_chain, address)
    assert "fund" in one_error(run("deposit", "1000000eth", "--home", str(home), ok=False))
    assert "more than 0" in one_error(run("deposit", "0", "--home", str(home), ok=False))
    assert "more than 0" in one_error(run("withdraw", "0", "--home", str(home), ok=False))
    line = one_error(run("withdraw", "--complete", "--home", str(home), ok=False))
    assert "nothing to complete" in line and "withdraw AMOUNT" in line, line
    assert "nonzero" in one_error(run("payout", "set", "0x" + "00" * 20, "--home", str(home),
                                   ok=False))
    assert _sent(anvil_chain, address) == sent

    run("deposit", "2eth", "--home", str(home))
    run("withdraw", "1eth", "--home", str(home))
    sent = _sent(anvil_chain, address)
    line = one_error(run("withdraw", "--complete", "--home", str(home), ok=False))
    assert "UTC" in line and " s:" in line, line
    assert _sent(anvil_chain, address) == sent

    # the requests contract from a key without ETH for gas
    config = (home / "config.toml").read_text()
    (broke_home / "config.toml").write_text(config)
    line = one_error(run("chain", "deploy-requests", "--home", str(broke_home), ok=False))
    assert broke in line and "fund" in line, line


@pytest.mark.parametrize("notice", ["-1", "99999999999999999999999", "2592001"])
def test_deploy_refuses_a_notice_out_of_range(
    anvil_chain: Chain, tmp_path: Path, notice: str
) -> None:
    home, address = _node(anvil_chain, tmp_path)
    line = one_error(run("chain", "deploy", "--rpc", _url(anvil_chain), "--home", str(home),
                      "--withdraw-notice", notice, ok=False))
    assert "2592000" in line and "30 days" in line, line
    assert _sent(anvil_chain, address) == 0
    assert not (home / "config.toml").exists()


@pytest.mark.parametrize("stake", [str(1 << 128), "1000000000000000000000eth"])
def test_deploy_refuses_a_stake_no_mediator_could_lock(
    anvil_chain: Chain, tmp_path: Path, stake: str
) -> None:
    home, address = _node(anvil_chain, tmp_path)
    line = one_error(run("chain", "deploy", "--rpc", _url(anvil_chain), "--home", str(home),
                      "--min-mediator-stake", stake, ok=False))
    assert str((1 << 128) - 1) in line and "2^128 − 1" in line, line
    assert _sent(anvil_chain, address) == 0
    assert not (home / "config.toml").exists()


def test_deploy_through_a_symlinked_config_keeps_the_link(anvil_chain: Chain,
                                                          tmp_path: Path) -> None:
    home, _ = _node(anvil_chain, tmp_path)
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    (dotfiles / "lilypad.toml").write_text("# from my dotfiles\n")
    (dotfiles / "lilypad.toml").chmod(0o644)
    (home / "config.toml").symlink_to(dotfiles / "lilypad.toml")
    run("chain", "deploy", "--rpc", _url(anvil_chain), "--home", str(home))
    assert (home / "config.toml").is_symlink()
    assert (dotfiles / "lilypad.toml").read_text().startswith("# from my dotfiles\n")
    assert (dotfiles / "lilypad.toml").stat().st_mode & 0o777 == 0o644
    run("deposit", "1eth", "--home", str(home))  # the contract is found through the link


def test_deploy_with_a_chains_list(anvil_chain: Chain, tmp_path: Path) -> None:
    home, address = _node(anvil_chain, tmp_path)
    url = _url(anvil_chain)
    listed = (f'[[chains]]\nchain_id = 31337\nrpc_url = "{url}"\n'
              f'contract = "{NOT_CONTRACTS[0]}"   # replaced by deploy\n')
    (home / "config.toml").write_text(listed)
    out = run("chain", "deploy", "--rpc", url, "--home", str(home), "--json")
    deployed = json.loads(out[out.index("{"):])
    text = (home / "config.toml").read_text()
    assert f'contract = "{deployed["contract"]}"' in text and "[chain]\n" not in text
    run("deposit", "1eth", "--home", str(home), "--chain-id", "31337")
    out = run("chain", "deploy-requests", "--home", str(home), "--chain-id", "31337")
    assert "[[chains]] entry" in out, out
    assert "requests = " in (home / "config.toml").read_text()

    # a chain not in the list: deployed, and the entry to add is shown, the file untouched
    (home / "config.toml").write_text(listed.replace("31337", "31338"))
    sent = _sent(anvil_chain, address)
    out = run("chain", "deploy", "--rpc", url, "--home", str(home))
    assert "add this entry" in out and "chain_id = 31337" in out, out
    assert _sent(anvil_chain, address) == sent + 1
    assert (home / "config.toml").read_text() == listed.replace("31337", "31338")


def test_withdraw_says_what_it_did_or_refuses(anvil_chain: Chain, tmp_path: Path) -> None:
    home, address = _deployed(anvil_chain, tmp_path)
    run("deposit", "5eth", "--home", str(home))
    line = one_error(run("withdraw", "1eth", "--complete", "--home", str(home), ok=False))
    assert "not both" in line, line

    run("withdraw", "3eth", "--home", str(home))
    sent = _sent(anvil_chain, address)
    line = one_error(run("withdraw", "1eth", "--home", str(home), ok=False))
    assert "already pending" in line and "3 ETH" in line, line
    assert _sent(anvil_chain, address) == sent

    out = run("withdraw", "10eth", "--home", str(home), "--json")
    assert "replaces the pending withdrawal of 3 ETH" in out, out
    assert "only 5 ETH" in out, out
    state = json.loads(out[out.index("{"):])
    assert state["withdraw_requested_wei"] == 10 * ETH

    advance_chain_time(anvil_chain, NOTICE_S)
    wallet = anvil_chain.balance_of(address)
    out = run("withdraw", "--complete", "--home", str(home))
    assert "paid out 5 ETH" in out and "of the 10 ETH" in out, out
    assert anvil_chain.balance_of(address) > wallet + 4 * ETH


def test_every_key_command_takes_a_password_file(anvil_chain: Chain, tmp_path: Path) -> None:
    home = tmp_path / "node"
    identity = Identity.generate()
    identity.save(home / "keys", Password(b"correct horse"), scrypt_n=1 << 12)
    dev_rpc(anvil_chain, "anvil_setBalance", [identity.address, hex(1000 * ETH)])
    secret = tmp_path / "pw"
    secret.write_text("correct horse\n")
    secret.chmod(0o600)
    key = ("--home", str(home), "--password-file", str(secret))
    run("chain", "deploy", "--rpc", _url(anvil_chain), *key, "--withdraw-notice", str(NOTICE_S))
    run("deposit", "1eth", *key)
    run("withdraw", "1eth", *key)
    run("chain", "deploy-requests", *key)
    # balances and payout addresses are public: those commands ask for no password
    for command in (("balance",), ("payout", "show")):
        assert identity.address in run(*command, "--home", str(home))
    # without it the advice names an option the command has
    line = one_error(run("withdraw", "1eth", "--home", str(home), ok=False))
    assert "--password-file" in line, line
