"""Numeric settings: a value that is no valid number is a ConfigError naming the setting.

TOML has inf, nan and integers of any size; none of them may end the node with a traceback.
"""

import pytest

from lilypad_p2p.config import load_config
from lilypad_p2p.errors import ConfigError


def test_pull_limits_from_file_and_environment(tmp_path):
    (tmp_path / "config.toml").write_text("[modules]\nmax_image_mb = 64\n")
    config = load_config(home=tmp_path, environ={"LILYPAD_PULL_TIMEOUT_S": "90"}, flags={})
    assert (config.max_image_mb, config.pull_timeout_s) == (64, 90)


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "inf", "-inf", "nan", "true", '"ten"',
                                   "[1]"])
def test_a_pull_limit_that_is_no_positive_whole_number_is_refused(tmp_path, value):
    (tmp_path / "config.toml").write_text(f"[modules]\nmax_image_mb = {value}\n")
    with pytest.raises(ConfigError, match=r"modules\.max_image_mb"):
        load_config(home=tmp_path, environ={}, flags={})


@pytest.mark.parametrize("value", ["1" + "0" * 400, "inf", "nan", "-0.5", '"half"', "[0.1]"])
def test_a_check_rate_that_is_no_fraction_is_refused(tmp_path, value):
    (tmp_path / "config.toml").write_text(f"check_rate = {value}\n")
    with pytest.raises(ConfigError, match="check_rate"):
        load_config(home=tmp_path, environ={}, flags={})
