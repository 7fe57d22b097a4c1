"""A client's record policy and a provider's price in NodeConfig."""

import pytest

from lilypad_p2p.config import load_config
from lilypad_p2p.errors import ConfigError


def test_record_policy_and_price_from_file_and_environment(tmp_path, monkeypatch):
    config = load_config(home=tmp_path, flags={})
    assert (config.require_provider_deals, config.require_slash_free_blocks) == (0, 0)
    assert not config.prefer_provider_records and config.price_per_job_wei == 10**15
    (tmp_path / "config.toml").write_text(
        "require_provider_deals = 3\nrequire_slash_free_blocks = 7200\n"
        "prefer_provider_records = true\nprice_per_job_wei = 2000000000000000\n")
    config = load_config(home=tmp_path, flags={})
    assert (config.require_provider_deals, config.require_slash_free_blocks) == (3, 7200)
    assert config.prefer_provider_records and config.price_per_job_wei == 2 * 10**15
    monkeypatch.setenv("LILYPAD_REQUIRE_PROVIDER_DEALS", "5")
    assert load_config(home=tmp_path, flags={}).require_provider_deals == 5


@pytest.mark.parametrize("line", ["require_provider_deals = -1", "require_provider_deals = 1.5",
                                  "require_slash_free_blocks = \"a day\"",
                                  "prefer_provider_records = 2", "price_per_job_wei = -1"])
def test_bad_record_settings_are_refused_naming_the_setting(tmp_path, line):
    (tmp_path / "config.toml").write_text(line + "\n")
    with pytest.raises(ConfigError, match=line.split(" ")[0]):
        load_config(home=tmp_path, flags={})
