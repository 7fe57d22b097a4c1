"""The settings table: names that configs, scripts and docs use stay; defaults agree with the
parts they configure; every default is a value its own kind accepts."""

import pytest

from lilypad_p2p.config import SETTINGS, load_config
from lilypad_p2p.net import NetLimits
from lilypad_p2p.net._admission import LIMIT_NAMES


def test_every_file_key_and_variable_is_unique():
    assert len({row.label for row in SETTINGS}) == len(SETTINGS)
    assert len({row.env for row in SETTINGS}) == len(SETTINGS)
    assert all(row.env.startswith("LILYPAD_") for row in SETTINGS)


def test_the_limits_are_the_networks_with_its_defaults():
    limits = {row.toml_key[1]: row for row in SETTINGS if row.toml_key[0] == "limits"}
    assert sorted(limits) == sorted(LIMIT_NAMES)
    defaults = NetLimits()
    assert {name: row.default for name, row in limits.items()} == {
        name: getattr(defaults, name) for name in LIMIT_NAMES}


# Every setting but the peer-list file, whose value is a path and whose default is no file.
WRITTEN = [row for row in SETTINGS if row.name != "bootstrap_file_peers"]


@pytest.mark.parametrize("row", WRITTEN, ids=lambda row: row.label)
def test_a_default_written_back_reads_as_itself(row):
    """What `--help` and the README show as the default is what the setting parses to."""
    shown = row.kind.show(row.default)
    if shown == "none":
        assert row.default in (None, (), frozenset())
        return
    text = shown.replace("−", "-")
    value = (list(text.split(", ")) if isinstance(row.default, tuple | frozenset) else
             {"true": True, "false": False}.get(text, text))
    assert row.parse(value, "test") == row.default


def test_without_a_file_every_setting_is_its_default(tmp_path):
    config = load_config(home=tmp_path, environ={})
    for row in SETTINGS:
        assert getattr(config, row.name) == row.default
