"""Mediation settings in NodeConfig."""

import pytest

from lilypad_p2p.config import load_config
from lilypad_p2p.errors import ConfigError


def test_mediation_settings_from_file_and_flags(tmp_path):
    (tmp_path / "config.toml").write_text(
        "check_rate = 0.25\nmediation_fee_wei = 7\nconsortium_size = 5\n"
        "mediator_stake_wei = 3000000000000000000\ncheat_wrong_output = true\n")
    config = load_config(home=tmp_path, flags={})
    assert config.check_rate_ppm == 250_000
    assert (config.mediation_fee_wei, config.consortium_size) == (7, 5)
    assert config.mediator_stake_wei == 3 * 10**18
    assert config.cheat_wrong_output and not config.mediator_lies
    assert load_config(home=tmp_path, flags={"check_rate_ppm": 1.0}).check_rate_ppm == 1_000_000


@pytest.mark.parametrize("line", ["check_rate = 1.5", "check_rate = -0.1", "consortium_size = 33",
                                  "mediation_fee_wei = -1", "check_rate = true"])
def test_bad_mediation_settings_are_refused(tmp_path, line):
    (tmp_path / "config.toml").write_text(line + "\n")
    with pytest.raises(ConfigError):
        load_config(home=tmp_path, flags={})
