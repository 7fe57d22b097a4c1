"""Scenario files and the report's pure figures."""

from pathlib import Path

import pytest

from simnet import Faults, RoleMix, ScenarioError, load_scenario
from simnet._figures import deal_latencies, gas_per_deal, summary

SCENARIOS = Path(__file__).parents[3] / "simnet" / "scenarios"


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.toml")), ids=lambda p: p.stem)
def test_shipped_scenarios_load(path):
    scenario = load_scenario(path)
    assert sum(scenario.roles.counts(scenario.nodes).values()) == scenario.nodes


def test_role_mix_gives_every_role_a_node_and_providers_the_rest():
    assert RoleMix(0.1, 0.1, 0.2).counts(50) == {
        "solvers": 5, "mediators": 5, "clients": 10, "providers": 30}
    assert RoleMix(0.1, 0.1, 0.1).counts(4) == {
        "solvers": 1, "mediators": 1, "clients": 1, "providers": 1}


def test_cheaters_without_full_checking_are_refused():
    with pytest.raises(ScenarioError, match="check_rate"):
        Faults(cheater_share=0.5, check_rate=0.5)


def test_unknown_section_keys_are_refused(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[workload]\njobz = 3\n")
    with pytest.raises(ScenarioError, match="jobz"):
        load_scenario(path)


@pytest.mark.parametrize(("lines", "needle"), [
    ('nodes = "x"', "nodes = 'x' is not a whole number"),
    ("nodes = true", "nodes = True is not a whole number"),
    ('[workload]\njobs = "x"', "[workload] jobs = 'x' is not int"),
    ("[workload]\nrate_per_s = true", "[workload] rate_per_s = True is not float"),
    ('[workload]\nmodules = "hash"', "[workload] modules must be a list"),
    ("[network]\nnat_share = [1]", "[network] nat_share = [1] is not float"),
])
def test_a_value_of_the_wrong_type_is_named(tmp_path, lines, needle):
    path = tmp_path / "typo.toml"
    path.write_text(lines + "\n")
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path)
    assert needle in str(raised.value)


def test_whole_numbers_stand_for_floats(tmp_path):
    path = tmp_path / "whole.toml"
    path.write_text("[workload]\nrate_per_s = 3\n")
    assert load_scenario(path).workload.rate_per_s == 3


def test_deal_latencies_follow_the_client_phases():
    steps = [{"to": "offered", "at_ms": 1000}, {"to": "matched", "at_ms": 1200},
             {"to": "open", "at_ms": 1500}, {"to": "running", "at_ms": 1600},
             {"to": "accepted", "at_ms": 2500}, {"to": "settled", "at_ms": 4500}]
    assert deal_latencies({"transitions": steps}) == {
        "offer_to_deal": 0.5, "deal_to_result": 1.0, "result_to_final": 2.0}
    cancelled = [{"to": "offered", "at_ms": 0}, {"to": "cancelled", "at_ms": 60_000}]
    assert deal_latencies({"transitions": cancelled})["deal_to_result"] is None


def test_batch_gas_is_split_among_its_deals():
    per_deal = gas_per_deal({"0xa": {"d1"}, "0xb": {"d1", "d2"}}, {"0xa": 100, "0xb": 60})
    assert per_deal == {"d1": 130, "d2": 30}


def test_summary_of_no_values_is_empty_and_percentiles_are_order_free():
    assert summary([]).n == 0
    assert summary([3.0, 1.0, 2.0]).p50 == 2.0


def test_node_settings_become_config_lines(tmp_path):
    path = tmp_path / "tuned.toml"
    path.write_text('[node]\nagreement_timeout_s = 120\nmuxer = "yamux"\n')
    scenario = load_scenario(path)
    assert scenario.node_config_lines() == 'agreement_timeout_s = 120\nmuxer = "yamux"\n'
    assert scenario.with_nodes(20).node_settings == scenario.node_settings


def test_a_node_table_setting_must_be_plain(tmp_path):
    path = tmp_path / "nested.toml"
    path.write_text("[node.chain]\nrpc_url = 'x'\n")
    with pytest.raises(ScenarioError, match="plain setting"):
        load_scenario(path)
