from pathlib import Path

import pytest

from lilypad_p2p.config import DEFAULT_LISTEN, load_config
from lilypad_p2p.errors import ConfigError

PEER = "16Uiu2HAmLe5KhEnd6o6ydvqRQhaF1eq8JuQrgHsEcUWTBwGjqpZc"


def write(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(text)


def test_defaults_without_file(tmp_path):
    config = load_config(home=tmp_path, environ={})
    assert config.listen == DEFAULT_LISTEN
    assert config.markets == ("cpu",)
    assert config.roles == frozenset()
    assert config.rpc_url is None
    assert config.keystore_dir == tmp_path / "keys"


def test_file_then_env_then_flags(tmp_path):
    write(tmp_path, 'roles = ["solver"]\nmarkets = ["gpu"]\nlog_level = "debug"\n')
    env = {"LILYPAD_MARKETS": "cpu,gpu", "LILYPAD_LOG_LEVEL": "warning"}
    config = load_config(home=tmp_path, environ=env, flags={"log_level": "error", "roles": None})
    assert config.roles == {"solver"}  # only the file says it
    assert config.markets == ("cpu", "gpu")  # env beats file
    assert config.log_level == "error"  # flag beats env


def test_chain_table(tmp_path):
    addr = "0x" + "ab" * 20
    write(tmp_path, f'[chain]\nrpc_url = "http://127.0.0.1:8545"\ncontract = "{addr}"\n')
    config = load_config(home=tmp_path, environ={})
    assert config.rpc_url == "http://127.0.0.1:8545"
    assert config.contract == addr


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ('roles = ["farmer"]', "'farmer' is not a role"),
        ('markets = ["GPU!"]', "not a market name"),
        ('listen = ["not-an-addr"]', "not a multiaddr"),
        ('bootstrap = ["/ip4/127.0.0.1/tcp/4001"]', "lacks /p2p/"),
        ("colour = 1", "unknown setting(s) ['colour']; `lilypad-p2p node --help` lists"),
        ("market = [\"gpu\"]", "did you mean ['markets']?"),
        ('[chain]\nrpc = "x"', "unknown [chain] setting"),
        ('[chain]\nrpc_url = "ftp://x"', "chain.rpc_url"),
        ('[chain]\ncontract = "0x12"', "chain.contract"),
        ('[chain]\nrequests = "0x12"', "chain.requests"),
        ("mediation_fee_wei = 1.5", "1.5 is not a whole number of wei"),
        ("[relay]\nreservations = 65", "relay.reservations"),
        ("roles = [", "not valid TOML"),
        ('log_level = "loud"', "log_level"),
    ],
)
def test_bad_file_values_name_the_setting_and_file(tmp_path, toml, needle):
    write(tmp_path, toml)
    with pytest.raises(ConfigError) as info:
        load_config(home=tmp_path, environ={})
    assert needle in str(info.value)


def test_bad_env_value_names_the_variable(tmp_path):
    with pytest.raises(ConfigError, match="LILYPAD_ROLES"):
        load_config(home=tmp_path, environ={"LILYPAD_ROLES": "client,wizard"})


def test_bad_flag_names_the_flag(tmp_path):
    with pytest.raises(ConfigError, match="--bootstrap"):
        load_config(home=tmp_path, environ={}, flags={"bootstrap": ["/ip4/1.2.3.4/tcp/1"]})


def test_bootstrap_with_peer_id_accepted(tmp_path):
    addr = f"/ip4/127.0.0.1/tcp/4001/p2p/{PEER}"
    config = load_config(home=tmp_path, environ={"LILYPAD_BOOTSTRAP": addr})
    assert config.bootstrap == (addr,)


def test_missing_explicit_config_file(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(home=tmp_path, config_file=tmp_path / "nope.toml", environ={})


def test_empty_env_variable_does_not_override_the_file(tmp_path):
    addr = "0x" + "cd" * 20
    write(tmp_path, f'markets = ["gpu"]\n[chain]\ncontract = "{addr}"\n')
    config = load_config(
        home=tmp_path, environ={"LILYPAD_CONTRACT": "", "LILYPAD_MARKETS": ""}
    )
    assert config.contract == addr
    assert config.markets == ("gpu",)


