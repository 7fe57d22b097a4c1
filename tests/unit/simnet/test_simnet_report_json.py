"""The typed report's JSON form: the keys report.json always had (benchmarks and tests read
them), wei as strings, and only the network sections the scenario has."""

import json

from simnet._figures import latency_section, posted_rate, work_section
from simnet._report import (
    Check,
    DealCounts,
    Funds,
    GasFigures,
    GossipFigures,
    MemoryFigures,
    MetricsFigures,
    NatView,
    NetworkFigures,
    NodeFigures,
    Report,
    write_json,
)

KEYS = {"scenario", "node_count", "roles", "jobs", "startup_s", "workload_s", "posted_per_s",
        "wall_s",
        "providers_final", "events", "deals", "latencies", "work", "gas", "funds", "nodes",
        "memory", "gossip", "metrics", "spam_scores", "network", "invariants", "passed"}
DEAL = {"key": "k1", "phase": "settled", "provider": "0xAA", "transitions": [
    {"to": "offered", "at_ms": 1000}, {"to": "open", "at_ms": 3000},
    {"to": "accepted", "at_ms": 4000}, {"to": "settled", "at_ms": 4500}]}


def _report(network: NetworkFigures, nodes: dict[str, NodeFigures]) -> Report:
    return Report(
        scenario="smoke", node_count=2, roles={"providers": 1, "clients": 1}, jobs=1,
        startup_s=1.0, workload_s=2.0, posted_per_s=None, wall_s=3.0, providers_final=True,
        events=[],
        deals=DealCounts(by_final_state={"settled": 1}, outcomes={},
                         checked_off_chain={"PROVIDER_CORRECT": 1}),
        latencies=latency_section([DEAL]),
        work=work_section([DEAL], {"0xaa": "provider-1"}, {"provider-1": 10**15}),
        gas=GasFigures(per_deal={"0x01": 21_000}, mean=21_000, chain_events={"DealOpened": 1}),
        funds=Funds(contract_balance=10**24 + 1, accounted=10**24 + 1,
                    holdings_change={"provider-1": 10**15, "client-1": -(10**15)}),
        nodes=nodes,
        memory=MemoryFigures(total_pss_max_mb=95.0, per_node_mb=47.5, zygote_pss_max_mb=20.0),
        gossip=GossipFigures(provider_offer_coverage_mean=1.0),
        metrics=MetricsFigures(scraped=False, interval_s=None, by_role={}),
        spam_scores={}, network=network,
        invariants=[Check("funds_conserved", True, "equal")], passed=True)


def test_the_json_form_has_the_report_keys_and_wei_as_strings(tmp_path):
    nodes = {"provider-1": NodeFigures(role="provider", cpu_s=1.5, rss_max_mb=90.0,
                                       pss_max_mb=40.0),
             "client-1": NodeFigures(role="client", cpu_s=1.0, rss_max_mb=80.0,
                                     pss_max_mb=35.0, metrics={"scrapes": 3})}
    report = _report(NetworkFigures(), nodes)
    form = json.loads(write_json(report.as_json(), tmp_path).read_text())
    assert set(form) == KEYS
    assert form["deals"]["checked_off_chain"] == {"PROVIDER_CORRECT": 1}
    assert form["funds"] == {"contract_balance": str(10**24 + 1), "accounted": str(10**24 + 1),
                             "holdings_change": {"provider-1": str(10**15),
                                                 "client-1": str(-(10**15))}}
    assert form["invariants"] == [{"name": "funds_conserved", "ok": True, "detail": "equal"}]
    assert "metrics" not in form["nodes"]["provider-1"]
    assert form["nodes"]["client-1"]["metrics"] == {"scrapes": 3}
    assert form["latencies"]["summary"]["offer_to_deal"] == {
        "n": 1, "p50": 2.0, "p99": 2.0, "mean": 2.0, "max": 2.0}
    assert form["latencies"]["per_deal"][0]["posted_ms"] == 1000
    assert form["work"]["jobs_per_provider"] == {"provider-1": 1}
    assert form["network"] == {}
    report.plots = ["latencies.png"]
    assert report.as_json()["plots"] == ["latencies.png"]


def test_the_network_section_holds_what_the_scenario_has():
    nat = NatView(ready_after_s=4.0, relayed={"provider-3": True},
                  nodes={"provider-3": {"reachability": "private"}})
    natted = NetworkFigures(groups={"provider-3": "nat1"}, nat_at_start=nat,
                            nat_at_end={"provider-3": {"reachability": "private"}})
    assert _report(natted, {}).as_json()["network"] == {
        "groups": {"provider-3": "nat1"},
        "nat_at_start": {"ready_after_s": 4.0, "relayed": {"provider-3": True},
                         "nodes": {"provider-3": {"reachability": "private"}}},
        "nat_at_end": {"provider-3": {"reachability": "private"}}}
    cut = NetworkFigures(groups={"client-1": "a"}, partitioned=True,
                         partition_window_s=(3.0, 33.0))
    assert _report(cut, {}).as_json()["network"] == {
        "groups": {"client-1": "a"}, "partition_window_s": (3.0, 33.0),
        "converged_after_heal_s": None}


def test_the_posted_rate_is_jobs_per_second_between_the_first_post_and_the_last():
    # 400 jobs posted over 230 s: a driver that could not keep a 4 jobs/s scenario's pace.
    assert posted_rate([0.0, *[230.0 * i / 399 for i in range(1, 400)]]) == 1.73
    assert posted_rate([5.0, 0.0, 2.5]) == 0.4  # the order posts are listed in does not count
    assert posted_rate([]) is None
    assert posted_rate([3.0]) is None
