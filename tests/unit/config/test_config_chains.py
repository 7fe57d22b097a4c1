"""`[[chains]]`: several settlement chains per node, and the one-chain `[chain]` shorthand."""

from pathlib import Path

import pytest

from lilypad_p2p.config import ChainSettings, load_config
from lilypad_p2p.errors import ConfigError

SETTLEMENT, REQUESTS, OTHER = "0x" + "ab" * 20, "0x" + "cd" * 20, "0x" + "ef" * 20


def write(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(text)


def entry(chain_id: object = 31337, rpc_url: str = "http://127.0.0.1:8545",
          contract: str | None = SETTLEMENT, extra: str = "") -> str:
    lines = ["[[chains]]", f"chain_id = {chain_id!r}".replace("'", '"'),
             f'rpc_url = "{rpc_url}"']
    if contract is not None:
        lines.append(f'contract = "{contract}"')
    return "\n".join(lines) + "\n" + extra + "\n"


def test_the_chain_table_is_the_one_chain_shorthand(tmp_path):
    write(tmp_path, f'[chain]\nrpc_url = "http://127.0.0.1:8545"\ncontract = "{SETTLEMENT}"\n'
                    f'requests = "{REQUESTS}"\n')
    config = load_config(home=tmp_path, environ={})
    assert config.chains == (ChainSettings(None, "http://127.0.0.1:8545", SETTLEMENT, REQUESTS),)
    # No file at all: one embedded chain.
    assert load_config(home=tmp_path / "empty", environ={}).chains == (ChainSettings(),)


def test_chains_are_listed_in_order_with_an_optional_requests_contract(tmp_path):
    write(tmp_path, entry(31338, "http://127.0.0.1:9545", OTHER)
          + entry(31337, extra=f'requests = "{REQUESTS}"')
          + entry(131277322940537, "embedded", contract=None))
    chains = load_config(home=tmp_path, environ={}).chains
    assert chains == (
        ChainSettings(31338, "http://127.0.0.1:9545", OTHER, None),
        ChainSettings(31337, "http://127.0.0.1:8545", SETTLEMENT, REQUESTS),
        ChainSettings(131277322940537, None, None, None),
    )


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        (entry() + entry(), "chain_id [31337] listed twice"),
        (entry(1, "embedded", None) + entry(2, "embedded", None), "at most one chain"),
        (entry(extra='gas = 1'), "unknown key(s) ['gas']"),
        (entry(contract=None), "needs `contract`"),
        ("[[chains]]\nrpc_url = \"embedded\"\n", "['chain_id'] missing"),
        (entry(0), "chain_id 0 is not in"),
        (entry("31337"), "chain_id '31337' is not in"),
        (entry(rpc_url="ftp://x"), "is not an http(s)://"),
        (entry(extra='requests = "0x12"'), "is not a 0x-prefixed"),
        ("chains = []\n", "list 1 to 16 chains"),
        ("chains = 3\n", "must be an array of tables"),
        (entry() + f'[chain]\ncontract = "{SETTLEMENT}"\n', "would be ambiguous"),
    ],
)
def test_bad_chains_are_refused_clearly(tmp_path, toml, needle):
    write(tmp_path, toml)
    with pytest.raises(ConfigError) as caught:
        load_config(home=tmp_path, environ={})
    assert needle in str(caught.value)


def test_the_shorthand_from_the_environment_conflicts_with_a_chain_list(tmp_path):
    write(tmp_path, entry())
    with pytest.raises(ConfigError, match=r"ambiguous.*pick an entry with --chain-id"):
        load_config(home=tmp_path, environ={"LILYPAD_RPC_URL": "http://127.0.0.1:1"})
