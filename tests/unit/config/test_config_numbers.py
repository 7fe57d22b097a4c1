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


@pytest.mark.parametrize("text", ["-5", "-0", "-86401", "+0", "99999999999999999999"])
def test_a_whole_number_out_of_range_is_called_out_of_range(tmp_path, text):
    # A sign does not make text "no number": it is a number the setting does not allow.
    with pytest.raises(ConfigError) as info:
        load_config(home=tmp_path, environ={"LILYPAD_MATCH_TIMEOUT_S": text}, flags={})
    message = str(info.value)
    assert f"{text!r} is out of range: at least 1 s and at most 86400 s" in message
    assert "not a whole number" not in message and "\n" not in message


@pytest.mark.parametrize(("text", "seconds"), [("+5", 5), (" 7 ", 7), ("007", 7)])
def test_a_whole_number_as_text_may_carry_a_plus_sign_and_spaces(tmp_path, text, seconds):
    config = load_config(home=tmp_path, environ={"LILYPAD_MATCH_TIMEOUT_S": text}, flags={})
    assert config.match_timeout_s == seconds


@pytest.mark.parametrize("text", ["²", "٣", "1_000", "5s", "1.0", "- 5", "+-5"])
def test_text_other_than_ascii_digits_is_no_whole_number(tmp_path, text):
    # "²" passes str.isdigit() but not int(): it must be refused in words, not a traceback.
    with pytest.raises(ConfigError, match="is not a whole number of seconds"):
        load_config(home=tmp_path, environ={"LILYPAD_MATCH_TIMEOUT_S": text}, flags={})


def test_an_out_of_range_variable_is_one_line_from_the_command_line(tmp_path):
    from typer.testing import CliRunner

    from lilypad_p2p.cli import app

    result = CliRunner().invoke(app, ["balance", "--home", str(tmp_path)],
                                env={"LILYPAD_MATCH_TIMEOUT_S": "-5"})
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: match_timeout_s (LILYPAD_MATCH_TIMEOUT_S): '-5' is out of range: at least 1 s "
        "and at most 86400 s"]


# The file is typed by TOML: a quoted number or boolean there is text, refused with the bare
# spelling; variables and flags are text by nature and keep being read.
@pytest.mark.parametrize(("line", "setting", "bare"), [
    ('match_timeout_s = "60"', "match_timeout_s", "match_timeout_s = 60"),
    ('match_timeout_s = "ten"', "match_timeout_s", "match_timeout_s = 1"),
    ('[relay]\nreservations = "3"', "relay.reservations", "reservations = 3"),
    ('upnp = "true"', "upnp", "upnp = true"),
    ('follow_markets = "yes"', "follow_markets", "follow_markets = true"),
    ('[modules]\nallow_any = "false"', "modules.allow_any", "allow_any = false"),
    ('check_rate = "0.5"', "check_rate", "check_rate = 0.5"),
])
def test_a_quoted_number_or_boolean_in_the_file_is_refused(tmp_path, line, setting, bare):
    (tmp_path / "config.toml").write_text(line + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(home=tmp_path, environ={}, flags={})
    message = str(info.value)
    assert message.startswith(f"{setting} ({tmp_path / 'config.toml'}): ")
    assert "in quotes" in message and message.endswith(f"write it without quotes, e.g. {bare}")
    assert "\n" not in message


def test_bare_values_in_the_file_and_text_in_variables_and_flags_are_read(tmp_path):
    (tmp_path / "config.toml").write_text(
        "match_timeout_s = 61\nupnp = true\ncheck_rate = 0.25\n[relay]\nreservations = 3\n")
    config = load_config(home=tmp_path, environ={}, flags={})
    assert (config.match_timeout_s, config.upnp, config.check_rate_ppm,
            config.relay_reservations) == (61, True, 250_000, 3)
    (tmp_path / "config.toml").unlink()
    environ = {"LILYPAD_MATCH_TIMEOUT_S": "62", "LILYPAD_UPNP": "true",
               "LILYPAD_RELAY_RESERVATIONS": "4", "LILYPAD_CHECK_RATE": "0.5"}
    config = load_config(home=tmp_path, environ=environ, flags={"check_rate_ppm": "0.75"})
    assert (config.match_timeout_s, config.upnp, config.check_rate_ppm,
            config.relay_reservations) == (62, True, 750_000, 4)


def test_an_amount_in_wei_may_be_quoted_in_the_file_as_it_outgrows_tomls_integers(tmp_path):
    ten_eth = 10 * 10**18  # above 2^63 - 1: TOML's integers end at about 9.2 ETH
    (tmp_path / "config.toml").write_text(f'mediator_stake_wei = "{ten_eth}"\n')
    assert load_config(home=tmp_path, environ={}, flags={}).mediator_stake_wei == ten_eth
    (tmp_path / "config.toml").write_text(f"mediator_stake_wei = {ten_eth}\n")
    assert load_config(home=tmp_path, environ={}, flags={}).mediator_stake_wei == ten_eth
