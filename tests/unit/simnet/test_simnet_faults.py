"""How fault scenarios plan their nodes, and the spam invariant's pure test."""

from pathlib import Path

import pytest

from lilypad_p2p.config import load_config
from lilypad_p2p.errors import ConfigError
from simnet import Faults, Scenario, ScenarioError, load_scenario
from simnet._invariants import scored_out
from simnet._plan import BOOTSTRAP_NODES, plan_nodes

SCENARIOS = Path(__file__).parents[3] / "simnet" / "scenarios"


def test_the_spam_scenario_plans_one_spamming_provider_that_is_not_a_bootstrap_node():
    plans = plan_nodes(load_scenario(SCENARIOS / "spam.toml"))
    (spammer,) = [plan for plan in plans if plan.spammer]
    assert spammer.role == "provider" and not spammer.cheater
    assert spammer not in plans[:BOOTSTRAP_NODES]
    assert "spam_gossip_per_s = 20\n" in spammer.config_lines
    assert not any("spam_gossip_per_s" in plan.config_lines for plan in plans if not plan.spammer)


def test_spammers_must_leave_honest_providers_to_bootstrap_from():
    scenario = Scenario("too-many", nodes=6, faults=Faults(spammers=2))
    with pytest.raises(ScenarioError, match="bootstrap"):
        plan_nodes(scenario)


def test_spammer_is_scored_out_only_when_every_connected_honest_node_graylists_it():
    assert scored_out({"a": -95.0, "b": None, "c": -81.0})
    assert not scored_out({"a": -95.0, "b": -12.5})


def test_the_node_reads_its_spam_rate_from_config(tmp_path):
    (tmp_path / "config.toml").write_text("spam_gossip_per_s = 20\n")
    assert load_config(home=tmp_path, environ={}).spam_gossip_per_s == 20
    assert load_config(home=tmp_path / "none", environ={}).spam_gossip_per_s == 0
    (tmp_path / "config.toml").write_text("spam_gossip_per_s = -1\n")
    with pytest.raises(ConfigError, match="spam_gossip_per_s"):
        load_config(home=tmp_path, environ={})
