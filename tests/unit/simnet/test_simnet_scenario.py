"""Scenario files and the report's pure figures."""

import os
import re
import threading
from pathlib import Path

import pytest

from simnet import Faults, RoleMix, ScenarioError, load_scenario
from simnet._figures import deal_latencies, gas_per_deal, summary
from simnet._plan import plan_nodes
from simnet._scenario import (
    MAX_NODES,
    MIN_NODES,
    SCENARIO_MAX_BYTES,
    scenario_path,
    shipped_scenarios,
)

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


@pytest.mark.parametrize(("lines", "needle"), [
    ("node_count = 6\n", "unknown key 'node_count'; known: name, nodes, [roles], [workload]"),
    ("[workloads]\njobs = 3\n", "unknown table [workloads] (did you mean [workload]?)"),
    ("[bogus]\n", "unknown table [bogus]; known: "),
    ("[workload]\njob = 3\n", "[workload] has no key 'job' (did you mean 'jobs'?); known: jobs, "
                              "rate_per_s"),
])
def test_unknown_keys_and_tables_are_refused_naming_the_known_ones(tmp_path, lines, needle):
    path = tmp_path / "typo.toml"
    path.write_text(lines)
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path)
    assert needle in str(raised.value)


def test_a_fifo_is_refused_at_once_not_waited_on(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def load() -> None:
        try:
            load_scenario(fifo)
        except BaseException as exc:
            outcome.append(exc)

    reader = threading.Thread(target=load, daemon=True)  # a hang must not hang pytest's exit
    reader.start()
    reader.join(10)
    assert not reader.is_alive(), "reading a FIFO blocked"
    assert isinstance(outcome[0], ScenarioError) and "not a regular file" in str(outcome[0])


@pytest.mark.parametrize("device", ["/dev/null", "/dev/zero"])
def test_a_device_is_refused_not_read(device):
    with pytest.raises(ScenarioError, match="not a regular file"):
        load_scenario(Path(device))


def test_a_scenario_larger_than_any_scenario_is_refused(tmp_path):
    path = tmp_path / "huge.toml"
    path.write_text("# " + "x" * SCENARIO_MAX_BYTES + "\n")
    with pytest.raises(ScenarioError, match="larger than"):
        load_scenario(path)


@pytest.mark.parametrize(("lines", "needle"), [
    ("match_timeout_s = 0", "[node] match_timeout_s: 0 is out of range"),
    ("match_timout_s = 5", "did you mean ['match_timeout_s']"),
    ('muxer = "smoke-signals"', "[node] muxer"),
])
def test_node_settings_are_checked_by_the_nodes_own_parsing_on_loading(tmp_path, lines, needle):
    path = tmp_path / "node.toml"
    path.write_text(f"[node]\n{lines}\n")
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path)
    assert needle in str(raised.value) and str(tmp_path) not in str(raised.value)


def test_node_settings_may_not_repeat_what_the_simnet_sets_itself(tmp_path):
    path = tmp_path / "twice.toml"
    path.write_text("[faults]\ncheck_rate = 0.5\n[node]\ncheck_rate = 0.5\n")
    with pytest.raises(ScenarioError, match="sets check_rate, which the simnet sets itself"):
        load_scenario(path)


def test_node_counts_are_bounded_for_one_machine():
    smoke = load_scenario(SCENARIOS / "smoke.toml")
    for count in (MIN_NODES - 1, MAX_NODES + 1, 40000):
        with pytest.raises(ScenarioError, match=f"{MIN_NODES} to {MAX_NODES}"):
            smoke.with_nodes(count)
    assert smoke.with_nodes(MIN_NODES).nodes == MIN_NODES


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.toml")), ids=lambda p: p.stem)
def test_the_fewest_nodes_a_refusal_names_are_accepted(path):
    scenario = load_scenario(path)
    try:
        fewest = scenario.with_nodes(MIN_NODES).nodes
    except ScenarioError as exc:
        said = re.search(r"needs at least (\d+) nodes, not 5", str(exc))
        assert said, exc
        fewest = int(said.group(1))
        with pytest.raises(ScenarioError, match=f"at least {fewest} nodes"):
            scenario.with_nodes(fewest - 1)
    assert plan_nodes(scenario.with_nodes(fewest))


def test_a_shipped_scenario_is_named_or_pathed(tmp_path, monkeypatch):
    assert scenario_path("smoke") == SCENARIOS / "smoke.toml"
    assert scenario_path(str(SCENARIOS / "smoke.toml")) == SCENARIOS / "smoke.toml"
    assert "smoke" in shipped_scenarios() and "baseline" in shipped_scenarios()
    with pytest.raises(ScenarioError, match=r"no scenario 'smok'.*baseline"):
        scenario_path("smok")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "smoke").write_text("name = 'mine'\n")  # a file of that name here wins
    assert scenario_path("smoke") == Path("smoke")
