"""The simnet report: its typed sections, their JSON form (report.json, which benchmarks and
tests read by key), and the PNG plots drawn from that form."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simnet._figures import LATENCY_NAMES, Latencies, Work


@dataclass(frozen=True)
class Check:
    """One invariant: its name, whether it held, and what was seen."""

    name: str
    ok: bool
    detail: str


@dataclass
class NodeFigures:
    """One node's CPU and memory (psutil), gossip counters and offer coverage (its control
    interface), and its scraped /metrics (None: not scraped)."""

    role: str
    cpu_s: float
    rss_max_mb: float
    pss_max_mb: float
    gossip_delivered: int = 0
    gossip_dropped: int = 0
    gossip_graylisted_ignored: int = 0
    provider_offers_known: float | None = None  # share of the providers' offers it holds
    metrics: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if self.metrics is None:
            del out["metrics"]
        return out


@dataclass(frozen=True)
class NatView:
    """The natted nodes after start: how long until all were private and relayed (None: not
    within the bound), which were, and each one's NAT status."""

    ready_after_s: float | None
    relayed: dict[str, bool]
    nodes: dict[str, dict[str, Any]]


@dataclass
class NetworkFigures:
    """What the namespaced scenarios add; the JSON form holds only what the scenario has."""

    groups: dict[str, str] | None = None
    nat_at_start: NatView | None = None
    nat_at_end: dict[str, dict[str, Any]] | None = None
    partitioned: bool = False
    partition_window_s: tuple[float, float] | None = None
    converged_after_heal_s: float | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.groups is not None:
            out["groups"] = self.groups
        if self.nat_at_start is not None:
            out["nat_at_start"] = dataclasses.asdict(self.nat_at_start)
            out["nat_at_end"] = self.nat_at_end
        if self.partitioned:
            out["partition_window_s"] = self.partition_window_s
            out["converged_after_heal_s"] = self.converged_after_heal_s
        return out


@dataclass(frozen=True)
class DealCounts:
    by_final_state: dict[str, int]
    outcomes: dict[str, int]  # mediations resolved on chain, by verdict
    checked_off_chain: dict[str, int]  # spot checks k mediators agreed on off chain, by verdict


@dataclass(frozen=True)
class GasFigures:
    per_deal: dict[str, int]  # deal id -> gas
    mean: int | None
    chain_events: dict[str, int]  # contract event name -> count


@dataclass(frozen=True)
class Funds:
    """Wei (strings in JSON: past a float's precision)."""

    contract_balance: int
    accounted: int
    holdings_change: dict[str, int]  # node name -> after minus before

    def as_json(self) -> dict[str, Any]:
        return {"contract_balance": str(self.contract_balance),
                "accounted": str(self.accounted),
                "holdings_change": {name: str(wei) for name, wei in self.holdings_change.items()}}


@dataclass(frozen=True)
class GossipFigures:
    provider_offer_coverage_mean: float | None


@dataclass(frozen=True)
class MetricsFigures:
    scraped: bool
    interval_s: float | None
    by_role: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class MemoryFigures:
    """The network's memory: at the sample where the nodes' PSS and the zygote's (when the nodes
    are forked) summed to most, that sum, and it divided by the nodes."""

    total_pss_max_mb: float
    per_node_mb: float
    zygote_pss_max_mb: float | None  # None: the nodes were spawned


@dataclass
class Report:
    """Everything a run reports."""

    scenario: str
    node_count: int
    roles: dict[str, int]
    jobs: int
    startup_s: float
    workload_s: float
    # Jobs per second the driver managed to post (the scenario asks for workload.rate_per_s).
    posted_per_s: float | None
    wall_s: float
    providers_final: bool
    events: list[str]
    deals: DealCounts
    latencies: Latencies
    work: Work
    gas: GasFigures
    funds: Funds
    nodes: dict[str, NodeFigures]
    memory: MemoryFigures
    gossip: GossipFigures
    metrics: MetricsFigures
    spam_scores: dict[str, dict[str, float | None]]
    network: NetworkFigures
    invariants: list[Check]
    passed: bool
    plots: list[str] | None = None  # the PNGs, once drawn

    def as_json(self) -> dict[str, Any]:
        """The report.json form."""
        out = dataclasses.asdict(self)
        out["funds"] = self.funds.as_json()
        out["nodes"] = {name: figures.as_json() for name, figures in self.nodes.items()}
        out["network"] = self.network.as_json()
        if self.plots is None:
            del out["plots"]
        return out


def write_json(report: Mapping[str, Any], out_dir: Path) -> Path:
    path = out_dir / "report.json"
    path.write_text(json.dumps(report, indent=2, sort_keys=True, default=str))
    return path


def write_plots(report: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """One PNG per figure; returns the files written."""
    try:
        import matplotlib
    except ImportError:
        raise SystemExit(
            "simnet plots need matplotlib: pip install 'lilypad-p2p[simnet]'"
        ) from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[Path] = []

    def save(figure: Any, name: str) -> None:
        figure.tight_layout()
        path = out_dir / name
        figure.savefig(path, dpi=90)
        plt.close(figure)
        written.append(path)

    rows = report["latencies"]["per_deal"]
    start = min((r["posted_ms"] for r in rows if r["posted_ms"] is not None), default=0)
    figure, axes = plt.subplots(1, 2, figsize=(12, 4))
    for name in LATENCY_NAMES:
        points = [((r["posted_ms"] - start) / 1000, r[name]) for r in rows
                  if r[name] is not None and r["posted_ms"] is not None]
        axes[0].scatter([p[0] for p in points], [p[1] for p in points], s=8, label=name)
        axes[1].hist([p[1] for p in points], bins=30, alpha=0.6, label=name)
    axes[0].set(xlabel="job posted at (s since first)", ylabel="seconds",
                title="latencies over time")
    axes[1].set(xlabel="seconds", ylabel="deals", title="latency distributions")
    for axis in axes:
        axis.legend()
    save(figure, "latencies.png")

    figure, axes = plt.subplots(1, 2, figsize=(12, 4))
    states = report["deals"]["by_final_state"]
    axes[0].bar(list(states), list(states.values()))
    axes[0].set(title="deals by final state", ylabel="deals")
    gas = list(report["gas"]["per_deal"].values())
    axes[1].hist(gas, bins=30)
    axes[1].set(title="gas per deal", xlabel="gas", ylabel="deals")
    save(figure, "deals_and_gas.png")

    nodes = report["nodes"]
    names = list(nodes)
    figure, axes = plt.subplots(3, 1, figsize=(max(8, len(names) * 0.25), 9), sharex=True)
    axes[0].bar(names, [nodes[n]["gossip_delivered"] for n in names])
    axes[0].set(title="gossip messages delivered per node", ylabel="messages")
    axes[1].bar(names, [nodes[n]["cpu_s"] for n in names])
    axes[1].set(title="CPU per node", ylabel="CPU seconds")
    axes[2].bar(names, [nodes[n]["rss_max_mb"] for n in names], label="RSS")
    axes[2].bar(names, [nodes[n]["pss_max_mb"] for n in names], label="PSS (its share)")
    axes[2].set(title="peak memory per node", ylabel="MiB")
    axes[2].legend()
    axes[2].tick_params(axis="x", rotation=90, labelsize=7)
    save(figure, "nodes.png")

    work = report["work"]
    per = work["jobs_per_provider"]
    prices = work["price_per_provider"]
    figure, axis = plt.subplots(figsize=(max(8, len(per) * 0.3), 4.5))
    for level, price in enumerate(sorted({prices[n] for n in per}, key=lambda p: p or 0)):
        names = [n for n in per if prices[n] == price]
        average = work["mean_jobs_by_price"].get(str(price))
        axis.bar(names, [per[n] for n in names], color=f"C{level}",
                 label=f"asks {price / 1e15:g}e15 wei: {average} jobs on average")
    axis.axhline(work["mean"], color="black", linewidth=0.8, label=f"mean {work['mean']}")
    axis.axhline(3 * work["mean"], color="red", linewidth=0.8, linestyle="--",
                 label="3 x mean")
    axis.set(title=f"jobs done per provider: {work['providers_with_work']} of "
                   f"{work['providers']} got work\nmost {work['max']} = "
                   f"{work['max_over_mean']} x the mean", ylabel="jobs")
    axis.tick_params(axis="x", rotation=90, labelsize=7)
    axis.legend(fontsize=7)
    save(figure, "jobs_per_provider.png")
    return written
