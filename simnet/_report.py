"""The simnet report: figures computed from what the run collected (pure), JSON and PNG plots."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

# Client-side phases that end each measured stretch of a deal's life.
DEAL_OPEN = "open"
RESULT_KNOWN = frozenset({"accepted", "rejected", "disputed"})
FINAL = frozenset({"settled", "resolved", "rejected", "cancelled", "timed_out"})
DONE = frozenset({"settled", "resolved"})
LATENCY_NAMES = ("offer_to_deal", "deal_to_result", "result_to_final")


def _first_at(transitions: Sequence[Mapping[str, Any]], phases: Iterable[str]) -> int | None:
    wanted = set(phases)
    return next((t["at_ms"] for t in transitions if t["to"] in wanted), None)


def deal_latencies(deal: Mapping[str, Any]) -> dict[str, float | None]:
    """Seconds offer→deal (posted to openDeal mined), deal→result (to the client's verdict on
    the output), result→final (to settled/resolved); None for a stretch the deal never ran."""
    steps = deal["transitions"]
    if not steps:
        return dict.fromkeys(LATENCY_NAMES)
    posted = steps[0]["at_ms"]
    opened = _first_at(steps, [DEAL_OPEN])
    result = _first_at(steps, RESULT_KNOWN)
    final = _first_at(steps, FINAL)

    def span(start: int | None, end: int | None) -> float | None:
        return None if start is None or end is None else (end - start) / 1000

    return {"offer_to_deal": span(posted, opened), "deal_to_result": span(opened, result),
            "result_to_final": span(result, final)}


def summary(values: Sequence[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p99": None, "mean": None, "max": None}
    ordered = sorted(values)
    return {"n": len(ordered), "p50": round(ordered[len(ordered) // 2], 3),
            "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3),
            "mean": round(statistics.fmean(ordered), 3), "max": round(ordered[-1], 3)}


def gas_per_deal(tx_deals: Mapping[str, set[str]], tx_gas: Mapping[str, int]) -> dict[str, int]:
    """Deal id -> gas of the transactions that touched it (a batch's gas split evenly)."""
    per_deal: Counter[str] = Counter()
    for tx, deals in tx_deals.items():
        for deal_id in deals:
            per_deal[deal_id] += tx_gas[tx] // len(deals)
    return dict(per_deal)


def latency_section(deals: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    rows = [{"posted_ms": d["transitions"][0]["at_ms"] if d["transitions"] else None,
             **deal_latencies(d)} for d in deals]
    return {
        "summary": {name: summary([r[name] for r in rows if r[name] is not None])
                    for name in LATENCY_NAMES},
        "per_deal": rows,
    }


def work_section(deals: Sequence[Mapping[str, Any]], providers: Mapping[str, str],
                 prices: Mapping[str, int]) -> dict[str, Any]:
    """Jobs done per provider (deals settled or resolved; `providers`: lower-case address ->
    name, every provider of the run) and how evenly they spread: how many providers got work,
    the mean, the most, and the most over the mean. `matched_per_provider` also counts the
    deals that ended otherwise (cancelled after the provider did not answer, timed out)."""
    names = sorted(providers.values(), key=_natural)

    def count(chosen: Iterable[Mapping[str, Any]]) -> dict[str, int]:
        counts = Counter(providers.get(str(d.get("provider") or "").lower()) for d in chosen)
        return {name: counts.get(name, 0) for name in names}

    per = count(d for d in deals if d.get("phase") in DONE)
    matched = count(deals)
    total = sum(per.values())
    mean = total / len(per) if per else 0.0
    most = max(per.values(), default=0)
    by_price: dict[int, list[int]] = {}
    for name, jobs in per.items():
        by_price.setdefault(prices.get(name, 0), []).append(jobs)
    return {
        "jobs_per_provider": per, "matched_per_provider": matched,
        "price_per_provider": {n: prices.get(n) for n in per},
        "providers": len(per), "providers_with_work": sum(1 for v in per.values() if v),
        "jobs": total, "mean": round(mean, 2), "max": most,
        "max_over_mean": round(most / mean, 2) if mean else None,
        "mean_jobs_by_price": {str(price): round(statistics.fmean(jobs), 2)
                               for price, jobs in sorted(by_price.items())},
    }


def _natural(name: str) -> tuple[str, int]:
    stem, _, number = name.rpartition("-")
    return (stem, int(number)) if number.isdigit() else (name, 0)


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
    axes[2].bar(names, [nodes[n]["rss_max_mb"] for n in names])
    axes[2].set(title="peak RSS per node", ylabel="MiB")
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
