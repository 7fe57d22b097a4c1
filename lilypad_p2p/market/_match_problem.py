"""One market's matching problem: the open offers in canonical order and each job's options.

Spreading work. Among offers of one price a job that names a records block ranks first the
better standing (`_record_rank.py`, which also gives newcomers their share); then every job
ranks first the offers of providers with the fewest recent matches (`recent_matches`: jobs
proposed on each offer within the hold window, which every solver derives from the same heard
proposals). Offers equal in both are ordered by
a draw, `sha256(offer ID)`, and that run is rotated for each job to start at `sha256(job ID)`
modulo its length: every solver computes the same order, but each job prefers different
providers, so neither the oldest offer nor any other wins every job. Jobs that arrive together
are spread too: taking the jobs oldest first, each job's best run starts instead at the first
offer, in its rotation, whose provider fewest of the batch's earlier jobs ranked first (six
jobs on three equal providers: two each, where the draws alone leave one provider none about a
quarter of the time).
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from lilypad_p2p.market._consortium import collateral_covers_check_rate
from lilypad_p2p.market._constraints import MatchPolicy, Vector, is_open, room_left, vector
from lilypad_p2p.market._module_policy import is_module_id_entry, offer_accepts
from lilypad_p2p.market._record_rank import RecordsAt, order_by_records, standing_of
from lilypad_p2p.wire import JobOffer, ResourceOffer, ResourceSpec

_AnyOffer = TypeVar("_AnyOffer", JobOffer, ResourceOffer)


def _canonical(offers: Iterable[_AnyOffer], now_ms: int) -> tuple[list[_AnyOffer], list[str]]:
    """The open offers, de-duplicated and sorted by (created_at, ID), and their IDs."""
    unique = {offer.cid: offer for offer in offers if is_open(offer, now_ms)}
    ordered = sorted(unique.items(), key=lambda item: (item[1].created_at, item[0]))
    return [offer for _, offer in ordered], [cid for cid, _ in ordered]


@dataclass(slots=True)
class Problem:
    """Offers in canonical order (a job's or offer's index is its rank by age, then ID)."""

    jobs: list[JobOffer]
    job_ids: list[str]
    resources: list[ResourceOffer]
    resource_ids: list[str]
    prices: list[int]
    need: list[Vector]
    capacity: list[Vector]
    # Per job: compatible resource indices, cheapest first, then least recently loaded
    # provider, then in the job's own rotation of the offers' draw order (module docstring).
    options: list[list[int]]
    # Per job: the same options before the job's rotation, in one order for every job (price,
    # load, the offer's draw), which first-fit takes them in.
    unrotated: list[list[int]]
    max_prices: list[int]
    # Per job: the first job with the same needs and options (interchangeable jobs).
    kind: list[int]

    def surplus(self, j: int, r: int) -> int:
        return self.max_prices[j] - self.prices[r]


def _compatible(
    job: JobOffer,
    candidates: list[int],
    resources: list[ResourceOffer],
    mediators: list[frozenset[str]],
    min_common: int,
) -> list[int]:
    """The candidates `mismatch` accepts, given that they already share the job's market and
    module, are affordable and open, and the deadline is reachable: the per-pair constraints
    only, written for speed (a test checks they agree with `mismatch`)."""
    need, vram = vector(job), job.spec.gpu_vram_mb
    target, creator, chain_id = job.target_provider, job.job_creator, job.chain_id
    check_rate_ppm = job.check_rate_ppm
    trusted = frozenset(job.trusted_mediators)
    compatible = []
    for r in candidates:
        offer = resources[r]
        if target is not None and offer.provider != target:
            continue
        if chain_id not in offer.chain_ids:
            continue
        if check_rate_ppm and not collateral_covers_check_rate(
            offer.collateral_wei, offer.price_per_job_wei, check_rate_ppm
        ):
            continue
        spec = offer.spec
        if not (
            need[0] <= spec.milli_cpu
            and need[1] <= spec.ram_mb
            and need[2] <= spec.disk_mb
            and need[3] <= spec.gpu_count
            and (not need[3] or vram <= spec.gpu_vram_mb)
        ):
            continue
        theirs = mediators[r]
        accepted = trusted & theirs if trusted and theirs else trusted or theirs
        if len(accepted - {creator, offer.provider}) < min_common:
            continue
        compatible.append(r)
    return compatible


def _draw(offer_id: str) -> int:
    return int.from_bytes(hashlib.sha256(offer_id.encode()).digest()[:8], "big")


def _provider_load(
    resources: list[ResourceOffer], resource_ids: list[str], recent_matches: Mapping[str, int]
) -> list[int]:
    """Per resource offer: the jobs recently matched on any offer of its provider."""
    per_provider: dict[str, int] = {}
    for offer, offer_id in zip(resources, resource_ids, strict=True):
        count = recent_matches.get(offer_id, 0)
        per_provider[offer.provider] = per_provider.get(offer.provider, 0) + count
    return [per_provider[offer.provider] for offer in resources]


def build_problem(
    job_offers: Iterable[JobOffer],
    resource_offers: Iterable[ResourceOffer],
    now_ms: int,
    policy: MatchPolicy,
    reserved: Mapping[str, Sequence[ResourceSpec]],
    recent_matches: Mapping[str, int],
    records: RecordsAt,
) -> Problem:
    jobs, job_ids = _canonical(job_offers, now_ms)
    resources, resource_ids = _canonical(resource_offers, now_ms)
    prices = [offer.price_per_job_wei for offer in resources]
    load = _provider_load(resources, resource_ids, recent_matches)
    draws = [_draw(offer_id) for offer_id in resource_ids]
    by_price = sorted(range(len(resources)), key=lambda r: (prices[r], load[r], draws[r], r))
    providers = [offer.provider for offer in resources]
    rank_key = list(zip(prices, load, strict=True))
    standings: dict[tuple[int, int], dict[str, int]] = {}
    tier = [0] * len(resources)  # offers of one tier are equally good for any job
    for rank, r in enumerate(by_price):
        previous = by_price[rank - 1] if rank else r
        same = prices[r] == prices[previous] and load[r] == load[previous]
        tier[r] = tier[previous] if same else tier[previous] + 1
    by_module: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
    # Offers with policy rules (digest, repository, any) are checked per job, cheapest first.
    with_rules: dict[str, list[int]] = {}
    for r in by_price:
        for module in resources[r].modules:
            if not is_module_id_entry(module):
                ruled = with_rules.setdefault(resources[r].market, [])
                if not ruled or ruled[-1] != r:
                    ruled.append(r)
                continue
            indices, sorted_prices = by_module.setdefault((resources[r].market, module), ([], []))
            indices.append(r)
            sorted_prices.append(prices[r])
    mediators = [frozenset(offer.trusted_mediators) for offer in resources]
    batch_load: dict[str, int] = {}  # per provider: the batch's jobs ranking it first so far
    options: list[list[int]] = []
    unrotated: list[list[int]] = []
    for job, job_id in zip(jobs, job_ids, strict=True):
        if now_ms + policy.execution_estimate_ms > job.deadline:
            options.append([])
            unrotated.append([])
            continue
        indices, sorted_prices = by_module.get((job.market, job.module), ([], []))
        affordable = indices[: bisect.bisect_right(sorted_prices, job.max_price_wei)]
        listed = set(affordable)
        ruled = [
            r for r in with_rules.get(job.market, ())
            if prices[r] <= job.max_price_wei and r not in listed
            and offer_accepts(resources[r].modules, job)
        ]
        if ruled:
            affordable = sorted([*affordable, *ruled], key=lambda r: (prices[r], r))
        compatible = _compatible(job, affordable, resources, mediators, policy.min_common_mediators)
        if job.records_block:
            key = (job.chain_id, job.records_block)
            if key not in standings and key in records:
                standings[key] = standing_of(records[key], job.records_block, providers)
            job_tier: dict[int, tuple[int, int, int]] = {}
            if key not in standings:  # records not replayed to the job's block: leave it out
                compatible = []
            else:
                compatible, job_tier = order_by_records(job, job_id, compatible, providers,
                                                        rank_key, records[key], standings[key])
            options.append(_least_loaded_first(
                _rotate_tiers(compatible, job_tier, _draw(job_id)), job_tier, providers,
                batch_load))
        else:
            options.append(_least_loaded_first(
                _rotate_tiers(compatible, tier, _draw(job_id)), tier, providers, batch_load))
        unrotated.append(compatible)
    return Problem(
        jobs=jobs,
        job_ids=job_ids,
        resources=resources,
        resource_ids=resource_ids,
        prices=prices,
        need=[vector(job) for job in jobs],
        capacity=[
            room_left(offer, reserved.get(offer_id, ()))
            for offer, offer_id in zip(resources, resource_ids, strict=True)
        ],
        options=options,
        unrotated=unrotated,
        max_prices=[job.max_price_wei for job in jobs],
        kind=_kinds(jobs, unrotated),
    )


def _rotate_tiers(
    compatible: list[int], tier: Sequence[object] | Mapping[int, object], job_draw: int
) -> list[int]:
    """Each run of equally good offers rotated to start at a place drawn from the job: every
    solver computes the same order, and each offer is some jobs' first choice. `compatible`
    is in tier order, so the runs are found by bisection (a step per run, not per offer)."""
    tiers: list[Any] = list(map(tier.__getitem__, compatible))
    if len(set(tiers)) == len(tiers):
        return compatible  # no two equally good offers: nothing to rotate
    rotated: list[int] = []
    start, end = 0, len(tiers)
    while start < end:
        stop = bisect.bisect_right(tiers, tiers[start], start)
        pivot = start + job_draw % (stop - start)
        rotated += compatible[pivot:stop]
        rotated += compatible[start:pivot]
        start = stop
    return rotated


def _least_loaded_first(
    ranked: list[int], tier: Sequence[object] | Mapping[int, object], providers: list[str],
    batch_load: dict[str, int],
) -> list[int]:
    """`ranked` with its first run of equally good offers rotated to start at the first offer
    whose provider the fewest earlier jobs of the batch ranked first; that provider is counted
    for this job. A step per offer of the run, as rotating it took."""
    if not ranked:
        return ranked
    first = tier[ranked[0]]
    best, best_load = 0, batch_load.get(providers[ranked[0]], 0)
    run = 1
    while run < len(ranked) and tier[ranked[run]] == first:
        if best_load:
            load = batch_load.get(providers[ranked[run]], 0)
            if load < best_load:
                best, best_load = run, load
        run += 1
    if best:
        ranked = ranked[best:run] + ranked[:best] + ranked[run:]
    chosen = providers[ranked[0]]
    batch_load[chosen] = batch_load.get(chosen, 0) + 1
    return ranked


def _kinds(jobs: list[JobOffer], options: list[list[int]]) -> list[int]:
    first_of: dict[tuple[Vector, int, tuple[int, ...]], int] = {}
    return [
        first_of.setdefault((vector(job), job.spec.gpu_vram_mb, tuple(options[j])), j)
        for j, job in enumerate(jobs)
    ]
