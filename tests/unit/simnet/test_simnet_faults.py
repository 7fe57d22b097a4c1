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
    # Refused as the scenario is made, not when it is planned, with the count that would do.
    with pytest.raises(ScenarioError, match=r"at least 7 nodes, not 6: .*bootstrap"):
        Scenario("too-many", nodes=6, faults=Faults(spammers=2))
    assert plan_nodes(Scenario("enough", nodes=7, faults=Faults(spammers=2)))


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


@pytest.mark.parametrize(("faults", "nodes", "needle"), [
    (Faults(cheater_share=0.2, check_rate=1.0), 6, "cheater_share = 0.2 of 3 providers makes none"),
    (Faults(false_failure_share=0.3, check_rate=1.0), 6, "false_failure_share = 0.3 of 3"),
    (Faults(churn_share=0.34), 5, "churn_share = 0.34 of 2 honest providers churns none"),
])
def test_a_fault_that_rounds_down_to_no_node_is_refused_with_the_count_that_makes_one(
        faults, nodes, needle):
    # Planned anyway, the fault's invariant found nothing to judge and the run failed after it.
    with pytest.raises(ScenarioError, match="needs at least") as raised:
        Scenario("few", nodes=nodes, faults=faults)
    assert needle in str(raised.value)
