"""Metrics exposition, readiness and the status page from a recorded snapshot (pure)."""

import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from lilypad_p2p.observe import exposition, readiness, render
from lilypad_p2p.tally import Tally

STATUS = {
    "peer_id": "16Uiu2HAmTest", "address": "0x" + "ab" * 20, "roles": ["provider", "solver"],
    "markets": ["cpu"], "listen_addrs": ["/ip4/127.0.0.1/tcp/4001"], "uptime_s": 12.5,
    "known_nodes": 3,
    "gossip": {"delivered": 40, "dropped": {"bad_signature": 2, "expired": 1},
               "reports": {"low_tolerance": 2}, "reported_peers": 1, "outbound_queue_drops": 0,
               "event_queue_drops": 0, "duplicates_skipped": 5,
               "graylisted_messages_ignored": 7, "connected_peers": 2,
               "connections_accepted": 9, "connections_refused": {"per_ip": 3},
               "banned_peers": 1, "trimmed_peers": 0, "peer_failures_contained": 2,
               "in_use": {"max_connections": 2, "max_inbound": 1, "streams": 4},
               "limits": {"max_connections": 160, "max_inbound": 128}},
    "book": {"offers": 3, "resource_offers": 2, "job_offers": 1, "markets": 1, "tombstones": 0,
             "added": 3, "already_known": 0, "refused_cancelled": 0, "refused_expired": 4,
             "refused_owner_limit": 0, "refused_full": 0, "refused_too_many_markets": 0,
             "evicted": 0, "expired": 0, "cancelled": 0},
    "nat": {"reachability": "public", "circuit_addrs": []},
    "chains": [{"chain_id": 31337, "contract": "0x" + "cd" * 20, "connected": True, "head": 99,
                "free_wei": 5 * 10**18, "locked_wei": 10**18, "withdrawing_wei": 7,
                "age_s": 12.5}],
}
PEERS = [
    {"peer_id": "16Uiu2HAmA", "addrs": ["/ip4/1.2.3.4/tcp/1"],
     "mesh_topics": ["/lilypad/1/market/cpu"], "score": -90.0},
    {"peer_id": "16Uiu2HAmB", "addrs": [], "mesh_topics": [], "score": 3.0},
]
DEALS = [
    {"key": "bafy1", "side": "provider", "phase": "running", "module": "hash",
     "job_creator": "0x" + "11" * 20, "provider": None, "error": None,
     "transitions": [{"from": None, "to": "agreed", "event": "countersigned", "at_ms": 1000}]},
    {"key": "bafy2", "side": "client", "phase": "settled", "module": "<script>alert(1)</script>",
     "provider": "0x" + "22" * 20, "error": "<b>bad</b>",
     "transitions": [{"from": "offered", "to": "matched", "event": "m", "at_ms": 2000}]},
]


def recorded_tallies() -> dict:
    phases, runs, calls = Tally(("side", "phase")), Tally(("outcome",)), Tally(
        ("function", "outcome"))
    phases.observe(("provider", "agreed"), 0.3)
    phases.observe(("provider", "agreed"), 2.0)
    phases.observe(("provider", "running"), 40.0)
    runs.observe(("ok",), 1.5)
    runs.observe(("out_of_memory",), 0.7)
    calls.observe(("openDeal", "ok"), 0.02)
    calls.observe(("settleBatch", "revert"), 0.04)
    return {
        "deal_phases": [("client", "settled", 1), ("provider", "running", 1)],
        "phase_durations": phases.snapshot(),
        "runs": {"provider": runs.snapshot()},
        "pulls": {"provider": []},
        "chain_calls": {"31337": calls.snapshot()},
    }


TALLIES = recorded_tallies()


def scrape() -> dict:
    text = exposition(STATUS, PEERS, TALLIES, readiness(STATUS, PEERS)).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_exposition_follows_prometheus_conventions():
    metrics = scrape()
    assert metrics[("lilypad_gossip_delivered_messages_total", ())] == 40
    assert metrics[("lilypad_gossip_rejected_messages_total", (("reason", "bad_signature"),))] == 2
    assert metrics[("lilypad_offers", (("kind", "resource"),))] == 2
    assert metrics[("lilypad_offers_refused_total", (("reason", "expired"),))] == 4
    assert metrics[("lilypad_deals", (("phase", "running"), ("side", "provider")))] == 1
    assert metrics[("lilypad_balance_wei", (("chain_id", "31337"), ("state", "locked")))] == 1e18
    assert metrics[("lilypad_chain_up", (("chain_id", "31337"),))] == 1
    assert metrics[("lilypad_chain_read_age_seconds", (("chain_id", "31337"),))] == 12.5
    assert metrics[("lilypad_peer_score_peers", (("le", "-80.0"),))] == 1
    assert metrics[("lilypad_peer_score_peers", (("le", "+Inf"),))] == 2
    assert metrics[("lilypad_gossip_mesh_peers", (("topic", "/lilypad/1/market/cpu"),))] == 1
    assert metrics[("lilypad_balance_wei", (("chain_id", "31337"), ("state", "withdrawing")))] == 7
    assert metrics[("lilypad_admission_refusals_total", (("budget", "per_ip"),))] == 3
    assert metrics[("lilypad_budget_in_use", (("budget", "max_inbound"),))] == 1
    assert metrics[("lilypad_budget_limit", (("budget", "max_inbound"),))] == 128
    assert metrics[("lilypad_peer_failures_contained_total", ())] == 2
    for name, _ in metrics:
        assert re.fullmatch(r"(lilypad|process|python)_[a-z0-9_]+", name), name
        assert not name.endswith("_total_total")


def test_deals_jobs_and_chain_calls_are_histograms_with_bounded_labels():
    metrics = scrape()
    agreed = (("phase", "agreed"), ("side", "provider"))
    assert metrics[("lilypad_deal_phase_duration_seconds_count", agreed)] == 2
    assert metrics[("lilypad_deal_phase_duration_seconds_sum", agreed)] == 2.3
    for le, count in (("0.25", 0), ("0.5", 1), ("+Inf", 2)):
        labels = tuple(sorted((*agreed, ("le", le))))
        assert metrics[("lilypad_deal_phase_duration_seconds_bucket", labels)] == count
    oom = (("outcome", "out_of_memory"), ("role", "provider"))
    assert metrics[("lilypad_job_run_duration_seconds_count", oom)] == 1
    revert = (("chain_id", "31337"), ("function", "settleBatch"), ("outcome", "revert"))
    assert metrics[("lilypad_chain_call_duration_seconds_count", revert)] == 1
    assert metrics[("lilypad_deals", (("phase", "settled"), ("side", "client")))] == 1


def test_a_tally_counts_every_observation_once_in_cumulative_buckets():
    tally = Tally(("outcome",))
    for seconds in (0.001, 0.3, 0.3, 7.0, 5000.0):
        tally.observe(("ok",), seconds)
    (entry,) = tally.snapshot()
    buckets = dict(entry["buckets"])
    assert entry["count"] == 5 and buckets[0.01] == 1 and buckets[0.5] == 3
    assert buckets[10.0] == 4 and buckets[900.0] == 4
    assert entry["sum_s"] == round(0.001 + 0.6 + 7.0 + 5000.0, 6)
    counts = [count for _, count in entry["buckets"]]
    assert counts == sorted(counts)


def test_a_tally_times_a_block_and_classifies_its_exception():
    tally, ticks = Tally(("outcome",)), iter([0.0, 2.0, 10.0, 10.5])

    def clock() -> float:
        return next(ticks)

    with tally.timed(lambda exc: ("ok" if exc is None else type(exc).__name__,), clock):
        pass
    try:
        with tally.timed(lambda exc: ("ok" if exc is None else type(exc).__name__,), clock):
            raise KeyError("x")
    except KeyError:
        pass
    shown = {entry["labels"]["outcome"]: entry for entry in tally.snapshot()}
    assert shown["ok"]["sum_s"] == 2.0 and shown["KeyError"]["sum_s"] == 0.5


def test_readiness_names_each_failing_check():
    assert readiness(STATUS, PEERS) == {"listening": True, "meshed": True, "chain_31337": True}
    down = {**STATUS, "chains": [{**STATUS["chains"][0], "connected": False}],
            "faults": [{"fault": "docker_unreachable"}]}
    checks = readiness(down, [])
    assert checks == {"listening": True, "meshed": False, "chain_31337": False,
                      "not_docker_unreachable": False}
    assert readiness({**STATUS, "roles": ["relay"]}, []) == {"listening": True,
                                                               "chain_31337": True}


def test_the_page_escapes_what_others_wrote():
    page = render(STATUS, PEERS, DEALS, 1234, {"cpu": []}, readiness(STATUS, PEERS))
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert "<b>bad</b>" not in page
    assert STATUS["address"] in page and "16Uiu2HAmA" in page and "ready" in page
    assert "Deals (latest 20 of 1234)" in page
    assert "not offered" not in page


def test_the_page_names_the_modules_a_provider_offers_too_little_for():
    status = {**STATUS, "modules_beyond_offer": ["python (needs 4096 MiB disk) <i>"]}
    page = render(status, PEERS, DEALS, 1, {"cpu": []}, readiness(status, PEERS))
    assert ('<span class="bad">not offered</span>: python (needs 4096 MiB disk) &lt;i&gt;: '
            "more than this provider offers") in page


def test_the_dashboard_only_charts_metrics_we_export():
    dashboard = json.loads(
        (Path(__file__).parents[3] / "deploy" / "grafana-dashboard.json").read_text()
    )
    text = exposition(STATUS, PEERS, TALLIES, {}).decode()
    families = {family.name for family in text_string_to_metric_families(text)}
    exported = families | {
        f"{name}_{suffix}" for name in families for suffix in ("total", "bucket", "count", "sum")
    }
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            for name in re.findall(r"\b((?:lilypad|process)_[a-z_]+)\{", target["expr"]):
                assert name in exported, (panel["title"], name)
