"""The `[modules]` pull limits: positive whole numbers, anything else a ConfigError naming them."""

import pytest

from lilypad_p2p.config import load_config
from lilypad_p2p.errors import ConfigError


def test_pull_limits_from_file_and_environment(tmp_path):
    (tmp_path / "config.toml").write_text("[modules]\nmax_image_mb = 64\n")
    config = load_config(home=tmp_path, environ={"LILYPAD_PULL_TIMEOUT_S": "90"}, flags={})
    assert (config.max_image_mb, config.pull_timeout_s) == (64, 90)


@pytest.mark.parametrize("value", ["0", "-1", "inf", "-inf", "nan", "true", '"ten"', "[1]"])
def test_a_pull_limit_that_is_no_positive_number_is_refused(tmp_path, value):
    (tmp_path / "config.toml").write_text(f"[modules]\nmax_image_mb = {value}\n")
    with pytest.raises(ConfigError, match=r"modules\.max_image_mb"):
        load_config(home=tmp_path, environ={}, flags={})
