"""NAT settings in config: the peer-list file, [relay] limits, upnp, muxer; the example parses."""

from __future__ import annotations

from pathlib import Path

import pytest

from lilypad_p2p.config import load_config
from lilypad_p2p.errors import ConfigError
from lilypad_p2p.net import DEFAULT_MUXER

PEER = "/ip4/10.0.0.1/tcp/4001/p2p/16Uiu2HAmKxFAWxdo6R6JMNpePqr6ziBRqpAy3gVVdxBajA162rp8"
EXAMPLES = Path(__file__).resolve().parents[3] / "bootstrap"


def test_peer_list_file_skips_comments_and_blank_lines(tmp_path):
    peers = tmp_path / "peers.txt"
    peers.write_text(f"# bootstrap\n\n{PEER}  # the relay\n")
    config = load_config(home=tmp_path, environ={"LILYPAD_BOOTSTRAP_FILE": str(peers)})
    assert config.bootstrap_file_peers == (PEER,)


def test_peer_list_entry_without_peer_id_is_refused(tmp_path):
    peers = tmp_path / "peers.txt"
    peers.write_text("/ip4/10.0.0.1/tcp/4001\n")
    with pytest.raises(ConfigError, match="bootstrap_file"):
        load_config(home=tmp_path, environ={"LILYPAD_BOOTSTRAP_FILE": str(peers)})


def test_missing_peer_list_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(home=tmp_path, environ={"LILYPAD_BOOTSTRAP_FILE": str(tmp_path / "none")})


def test_example_relay_config_and_peer_list_parse(tmp_path):
    config = load_config(
        home=tmp_path,
        config_file=EXAMPLES / "config.example.toml",
        environ={"LILYPAD_BOOTSTRAP_FILE": str(EXAMPLES / "peers.example.txt")},
    )
    assert config.has_role("relay") and config.muxer == DEFAULT_MUXER.value
    assert config.relay_max_circuits == 64 and config.relay_circuit_bytes == 1 << 30
    assert len(config.bootstrap_file_peers) == 1


def test_bad_relay_table_upnp_and_muxer_are_refused(tmp_path):
    (tmp_path / "config.toml").write_text("[relay]\nslots = 3\n")
    with pytest.raises(ConfigError, match=r"\[relay\]"):
        load_config(home=tmp_path, environ={})
    with pytest.raises(ConfigError, match="upnp"):
        load_config(home=tmp_path / "x", environ={"LILYPAD_UPNP": "maybe"})
    with pytest.raises(ConfigError, match="muxer"):
        load_config(home=tmp_path / "x", environ={"LILYPAD_MUXER": "quic"})
    assert load_config(home=tmp_path / "x", environ={"LILYPAD_UPNP": "true"}).upnp
