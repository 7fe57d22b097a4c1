"""The figures a simnet report shows, computed from what the run collected (pure): deal
latencies, the rate jobs were posted at, gas per deal, how the work spread over the
providers."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Summary:
    """How many values, and their median, 99th percentile, mean and most (None: no values)."""

    n: int
    p50: float | None = None
    p99: float | None = None
    mean: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class Latencies:
    summary: dict[str, Summary]  # LATENCY_NAMES -> their summary
    per_deal: list[dict[str, float | None]]  # posted_ms and the deal's LATENCY_NAMES


@dataclass(frozen=True)
class Work:
    """Jobs done per provider, and how evenly they spread (see `work_section`)."""

    jobs_per_provider: dict[str, int]
    matched_per_provider: dict[str, int]
    price_per_provider: dict[str, int | None]
    providers: int
    providers_with_work: int
    jobs: int
    mean: float
    max: int
    max_over_mean: float | None
    mean_jobs_by_price: dict[str, float]  # str(price) -> mean jobs of the providers asking it


def summary(values: Sequence[float]) -> Summary:
    if not values:
        return Summary(n=0)
    ordered = sorted(values)
    return Summary(n=len(ordered), p50=round(ordered[len(ordered) // 2], 3),
                   p99=round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3),
                   mean=round(statistics.fmean(ordered), 3), max=round(ordered[-1], 3))


def posted_rate(posted_at_s: Iterable[float]) -> float | None:
    """Jobs per second from the first job posted to the last (None for fewer than two): the
    driver posts each job with a blocking control call, so on a loaded machine this falls short
    of the scenario's rate, and the latencies are of a lighter load than it asked for."""
    times = sorted(posted_at_s)
    if len(times) < 2 or times[-1] <= times[0]:
        return None
    return round((len(times) - 1) / (times[-1] - times[0]), 2)


def gas_per_deal(tx_deals: Mapping[str, set[str]], tx_gas: Mapping[str, int]) -> dict[str, int]:
    """Deal id -> gas of the transactions that touched it (a batch's gas split evenly)."""
    per_deal: Counter[str] = Counter()
    for tx, deals in tx_deals.items():
        for deal_id in deals:
            per_deal[deal_id] += tx_gas[tx] // len(deals)
    return dict(per_deal)


def latency_section(deals: Sequence[Mapping[str, Any]]) -> Latencies:
    rows = [{"posted_ms": d["transitions"][0]["at_ms"] if d["transitions"] else None,
             **deal_latencies(d)} for d in deals]
    return Latencies(
        summary={name: summary([v for r in rows if (v := r[name]) is not None])
                 for name in LATENCY_NAMES},
        per_deal=rows,
    )


def work_section(deals: Sequence[Mapping[str, Any]], providers: Mapping[str, str],
                 prices: Mapping[str, int]) -> Work:
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
    return Work(
        jobs_per_provider=per, matched_per_provider=matched,
        price_per_provider={n: prices.get(n) for n in per},
        providers=len(per), providers_with_work=sum(1 for v in per.values() if v),
        jobs=total, mean=round(mean, 2), max=most,
        max_over_mean=round(most / mean, 2) if mean else None,
        mean_jobs_by_price={str(price): round(statistics.fmean(jobs), 2)
                            for price, jobs in sorted(by_price.items())},
    )


def _natural(name: str) -> tuple[str, int]:
    stem, _, number = name.rpartition("-")
    return (stem, int(number)) if number.isdigit() else (name, 0)
