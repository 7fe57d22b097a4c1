"""The `faulty-jobs` scenario's plan and its invariants (pure parts)."""

from pathlib import Path

import pytest

from lilypad_p2p.config import load_config
from simnet import Faults, ScenarioError, load_scenario
from simnet._faulty import SCRIPTS, failing_job, failing_module, faulty_invariants
from simnet._plan import BOOTSTRAP_NODES, NodePlan, plan_nodes

SCENARIOS = Path(__file__).parents[3] / "simnet" / "scenarios"


def test_the_scenario_plans_false_claimants_among_at_most_twelve_nodes():
    scenario = load_scenario(SCENARIOS / "faulty-jobs.toml")
    assert scenario.nodes <= 12 and "failing" in scenario.workload.modules
    plans = plan_nodes(scenario)
    claimants = [p for p in plans if p.false_failure]
    assert len(claimants) == 2
    assert all(p.role == "provider" and p.cheater for p in claimants)
    assert not set(map(id, claimants)) & set(map(id, plans[:BOOTSTRAP_NODES]))
    assert all("cheat_false_failure = true" in p.config_lines for p in claimants)
    assert not any("cheat_wrong_output" in p.config_lines for p in claimants)


def test_false_failures_need_every_result_checked():
    with pytest.raises(ScenarioError, match="check_rate = 1"):
        Faults(false_failure_share=0.3, check_rate=0.5)


def test_the_node_reads_the_false_failure_fault(tmp_path):
    (tmp_path / "config.toml").write_text("cheat_false_failure = true\n")
    assert load_config(home=tmp_path, environ={}).cheat_false_failure


def test_no_failing_script_exits_1_so_every_false_claim_is_false():
    assert not any("exit 1" in script for script in SCRIPTS)
    assert failing_job(5)["params"]["script"] == SCRIPTS[1]
    assert failing_module().module_id.startswith("bafkrei")


def _run(deals, before, after):
    plans = [NodePlan("honest", "provider"), NodePlan("liar", "provider", cheater=True,
                                                      false_failure=True)]
    by_provider = {p.name: p for p in plans}
    checks = {}
    faulty_invariants(plans, deals, before, after, lambda d: by_provider.get(d["provider"]),
                      "bafkfail", lambda name, ok, detail: checks.__setitem__(name, ok))
    return checks


def test_the_invariants_pass_when_failures_are_paid_and_lies_slashed():
    deals = [
        {"key": "a", "provider": "honest", "phase": "settled", "failure": "timeout",
         "module_id": "bafkfail"},
        {"key": "b", "provider": "liar", "phase": "resolved", "outcome": "PROVIDER_WRONG"},
    ]
    checks = _run(deals, {"honest": 10, "liar": 10}, {"honest": 11, "liar": 8})
    assert checks == {"no_honest_provider_lost_collateral": True,
                      "every_false_failure_claim_slashed": True,
                      "failed_jobs_paid_as_failure_results": True}


def test_the_invariants_catch_a_timed_out_honest_failure_and_an_unslashed_lie():
    deals = [
        {"key": "a", "provider": "honest", "phase": "timed_out", "module_id": "bafkfail"},
        {"key": "b", "provider": "liar", "phase": "settled", "failure": "exit"},
    ]
    checks = _run(deals, {"honest": 10, "liar": 10}, {"honest": 9, "liar": 11})
    assert not any(checks.values())
