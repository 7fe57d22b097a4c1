"""Prometheus metrics built at scrape time from the node's own status snapshot.

Nothing on the hot paths counts for Prometheus: the node already keeps counters (gossip,
offer book, deals in its store), and a scrape turns one snapshot of them into metric families.
A node with the listener off pays nothing; a scrape costs one status call.

Names follow Prometheus conventions: `lilypad_` prefix, base units in the name (`_seconds`,
`_wei`), `_total` for counters; label values come from fixed sets (drop reasons, report
actions, phases, sides, markets and chains the node is configured with), never from peers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Peer-score buckets (GossipSub scores; the graylist threshold is -80).
SCORE_BOUNDS = (-80.0, -60.0, -40.0, 0.0, 10.0, float("inf"))


class _Snapshot:
    """A collector over one snapshot (prometheus_client calls `collect` on exposition)."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def exposition(
    status: Mapping[str, Any],
    peers: Sequence[Mapping[str, Any]],
    tallies: Mapping[str, Any],
    ready: Mapping[str, bool],
) -> bytes:
    """The text exposition of one snapshot, with this process's CPU and memory."""
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    registry.register(_Snapshot(list(families(status, peers, tallies, ready))))
    return generate_latest(registry)


def families(
    status: Mapping[str, Any],
    peers: Sequence[Mapping[str, Any]],
    tallies: Mapping[str, Any],
    ready: Mapping[str, bool],
) -> Iterable[Metric]:
    """Every metric family of one snapshot: `status` and `peers` as the control methods of
    those names answer, `tallies` as the `tallies` method answers, `ready` from `readiness`."""
    info = GaugeMetricFamily(
        "lilypad_node_info", "This node: identity and roles (value 1).",
        labels=["peer_id", "address", "roles"],
    )
    info.add_metric(
        [status["peer_id"], status["address"], ",".join(status["roles"])], 1.0
    )
    yield info
    yield GaugeMetricFamily(
        "lilypad_uptime_seconds", "Seconds since the node started.", value=status["uptime_s"]
    )
    yield from _network(status, peers)
    yield from _budgets(status["gossip"])
    yield from _book(status)
    yield from _deals(tallies)
    yield from _jobs(tallies)
    yield from _chains(status)
    yield from _chain_calls(tallies)
    yield _by_label(
        GaugeMetricFamily, "lilypad_ready_check", "Each readiness check (1 passing, 0 failing).",
        "check", {name: 1.0 if passing else 0.0 for name, passing in ready.items()},
    )
    faults = GaugeMetricFamily(
        "lilypad_degraded", "Degraded states the node is in (1 while it lasts).", labels=["state"]
    )
    for state in degraded_states(status):
        faults.add_metric([state], 1)
    yield faults


def _by_label(
    kind: type[CounterMetricFamily | GaugeMetricFamily], name: str, help_text: str, label: str,
    values: Mapping[str, float],
) -> Metric:
    """A family with one sample per key of `values`, labelled `label`, in key order."""
    family = kind(name, help_text, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


def degraded_states(status: Mapping[str, Any]) -> list[str]:
    """The degraded states a node's status reports (`health.py` faults), by name."""
    return [str(fault["fault"]) for fault in status.get("faults", ())]


def _network(status: Mapping[str, Any], peers: Sequence[Mapping[str, Any]]) -> Iterable[Metric]:
    gossip = status["gossip"]
    yield GaugeMetricFamily("lilypad_peers", "Connected peers.", value=len(peers))
    yield GaugeMetricFamily(
        "lilypad_known_nodes", "Nodes whose signed record we hold.", value=status["known_nodes"]
    )
    yield CounterMetricFamily(
        "lilypad_gossip_delivered_messages", "Gossip messages validated and delivered.",
        value=gossip["delivered"],
    )
    yield _by_label(
        CounterMetricFamily, "lilypad_gossip_rejected_messages",
        "Gossip messages refused, by reason.", "reason", gossip["dropped"],
    )
    yield _by_label(
        CounterMetricFamily, "lilypad_peer_reports",
        "Misbehaviour reports against peers, by action.", "action", gossip["reports"],
    )
    for name, help_text in (
        ("outbound_queue_drops", "Messages dropped because a peer's outbound queue was full."),
        ("event_queue_drops", "Network events dropped because the node's queue was full."),
        ("graylisted_messages_ignored", "Messages ignored from graylisted peers."),
    ):
        yield CounterMetricFamily(f"lilypad_gossip_{name}", help_text, value=gossip[name])
    mesh = Counter(topic for peer in peers for topic in peer.get("mesh_topics", ()))
    yield _by_label(
        GaugeMetricFamily, "lilypad_gossip_mesh_peers", "Peers in our mesh, per topic.", "topic",
        mesh,
    )
    scores = [float(peer["score"]) for peer in peers if peer.get("score") is not None]
    buckets = [(str(bound), sum(1 for s in scores if s <= bound)) for bound in SCORE_BOUNDS]
    histogram = GaugeMetricFamily(
        "lilypad_peer_score_peers", "Connected peers with a GossipSub score at most `le`.",
        labels=["le"],
    )
    for bound, count in buckets:
        histogram.add_metric([bound.replace("inf", "+Inf")], count)
    yield histogram


def _book(status: Mapping[str, Any]) -> Iterable[Metric]:
    book = status["book"]
    offers = GaugeMetricFamily("lilypad_offers", "Offers in the book, by kind.", labels=["kind"])
    offers.add_metric(["resource"], book["resource_offers"])
    offers.add_metric(["job"], book["job_offers"])
    yield offers
    refused = CounterMetricFamily(
        "lilypad_offers_refused", "Offers the book refused, by reason.", labels=["reason"]
    )
    for key, count in sorted(book.items()):
        if key.startswith("refused_"):
            refused.add_metric([key.removeprefix("refused_")], count)
    yield refused


def _budgets(gossip: Mapping[str, Any]) -> Iterable[Metric]:
    yield CounterMetricFamily(
        "lilypad_connections_accepted", "Connections admitted by the resource budgets.",
        value=gossip.get("connections_accepted", 0),
    )
    for kind, name, help_text, key in (
        (CounterMetricFamily, "lilypad_admission_refusals",
         "Connections, streams and reads refused, by budget.", "connections_refused"),
        (GaugeMetricFamily, "lilypad_budget_in_use", "What each resource budget holds now "
         "(streams: all inbound streams; the stream limit is per protocol per peer).", "in_use"),
        (GaugeMetricFamily, "lilypad_budget_limit",
         "Each resource budget's configured limit ([limits]).", "limits"),
    ):
        yield _by_label(kind, name, help_text, "budget", gossip.get(key, {}))
    yield GaugeMetricFamily(
        "lilypad_banned_peers", "Peers refused for a backoff after falling below the graylist "
        "threshold.", value=gossip.get("banned_peers", 0),
    )
    for name, help_text in (
        ("trimmed_peers", "Connections closed to stay within budget (lowest score first)."),
        ("peer_failures_contained", "Peer tasks that failed and were contained (peer closed)."),
    ):
        yield CounterMetricFamily(f"lilypad_{name}", help_text, value=gossip.get(name, 0))


def _deals(tallies: Mapping[str, Any]) -> Iterable[Metric]:
    phases = GaugeMetricFamily(
        "lilypad_deals", "Deals in the store, by our side and phase.", labels=["side", "phase"]
    )
    for side, phase, count in tallies.get("deal_phases", ()):
        phases.add_metric([side, phase], count)
    yield phases
    yield _histogram(
        "lilypad_deal_phase_duration_seconds",
        "Time deals spent in a phase before leaving it, since the node started.",
        ["side", "phase"], tallies.get("phase_durations", ()),
    )


def _jobs(tallies: Mapping[str, Any]) -> Iterable[Metric]:
    for name, help_text, by_role in (
        ("lilypad_job_run_duration_seconds",
         "Jobs run in Docker, by role and outcome class (ok, exit_status, out_of_memory, "
         "timeout, output_rejected, inputs, image, docker, other), with their durations.",
         tallies.get("runs", {})),
        ("lilypad_image_pull_duration_seconds",
         "Registry image pulls, by role and outcome (ok, refused, failed), with durations.",
         tallies.get("pulls", {})),
    ):
        entries = [
            {**entry, "labels": {"role": role, **entry["labels"]}}
            for role, tally in sorted(by_role.items()) for entry in tally
        ]
        yield _histogram(name, help_text, ["role", "outcome"], entries)


def _chain_calls(tallies: Mapping[str, Any]) -> Iterable[Metric]:
    entries = [
        {**entry, "labels": {"chain_id": chain_id, **entry["labels"]}}
        for chain_id, tally in sorted(tallies.get("chain_calls", {}).items()) for entry in tally
    ]
    yield _histogram(
        "lilypad_chain_call_duration_seconds",
        "Contract calls and transactions (function is the contract function, or eth_getLogs), "
        "by outcome (ok, revert, unavailable, error), with their latency.",
        ["chain_id", "function", "outcome"], entries,
    )


def _histogram(
    name: str, help_text: str, labels: list[str], entries: Iterable[Mapping[str, Any]]
) -> Metric:
    """A histogram family from `tally.Tally.snapshot()` entries."""
    family = HistogramMetricFamily(name, help_text, labels=labels)
    for entry in entries:
        buckets = [(_bound(le), float(count)) for le, count in entry["buckets"]]
        buckets.append(("+Inf", float(entry["count"])))
        family.add_metric([str(entry["labels"][label]) for label in labels], buckets,
                          sum_value=float(entry["sum_s"]))
    return family


def _bound(le: float) -> str:
    return format(le, "g")


def _chains(status: Mapping[str, Any]) -> Iterable[Metric]:
    up = GaugeMetricFamily(
        "lilypad_chain_up", "Whether the chain's RPC answered the last read.", labels=["chain_id"]
    )
    head = GaugeMetricFamily("lilypad_chain_head_block", "Head block.", labels=["chain_id"])
    age = GaugeMetricFamily(
        "lilypad_chain_read_age_seconds",
        "How old the chain figures here are (a scrape reuses a read up to 60 s old while none of "
        "our deals changes phase).",
        labels=["chain_id"],
    )
    balance = GaugeMetricFamily(
        "lilypad_balance_wei",
        "Our settlement account: free, locked in deals, or withdrawing (requested, pending "
        "the notice period).",
        labels=["chain_id", "state"],
    )
    for chain in status.get("chains", ()):
        chain_id = str(chain["chain_id"])
        up.add_metric([chain_id], 1.0 if chain.get("connected") else 0.0)
        if "head" in chain:
            head.add_metric([chain_id], chain["head"])
        if "age_s" in chain:
            age.add_metric([chain_id], chain["age_s"])
        for state in ("free", "locked", "withdrawing"):
            if f"{state}_wei" in chain:
                balance.add_metric([chain_id, state], chain[f"{state}_wei"])
    yield up
    yield head
    yield age
    yield balance
