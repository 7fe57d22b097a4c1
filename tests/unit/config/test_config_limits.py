"""A public node's budgets: `[limits]` in the file, LILYPAD_LIMIT_* in the environment."""

import pytest

from lilypad_p2p.config import load_config
from lilypad_p2p.errors import ConfigError
from lilypad_p2p.net import NetLimits


def test_defaults_are_the_network_defaults(tmp_path):
    assert load_config(home=tmp_path, environ={}, flags={}).net_limits == NetLimits()


def test_limits_from_file_and_environment(tmp_path):
    (tmp_path / "config.toml").write_text("[limits]\nmax_per_ip = 4\nban_s = 600\n")
    config = load_config(home=tmp_path, environ={"LILYPAD_LIMIT_MAX_CONNECTIONS": "400"},
                         flags={})
    limits = config.net_limits
    assert (limits.max_per_ip, limits.ban_s, limits.max_connections) == (4, 600, 400)


@pytest.mark.parametrize("text", [
    "[limits]\nmax_per_ip = 0\n",
    "[limits]\nmax_per_ip = -3\n",
    "[limits]\nmax_peers = 3\n",
    "[limits]\nmax_connections = 10\nmax_inbound = 20\n",
])
def test_bad_limits_are_refused_with_the_setting_named(tmp_path, text):
    (tmp_path / "config.toml").write_text(text)
    with pytest.raises(ConfigError, match="limits"):
        load_config(home=tmp_path, environ={}, flags={})
