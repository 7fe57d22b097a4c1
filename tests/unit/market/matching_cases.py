"""Builders and an independent checker for the matching tests."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence

from lilypad_p2p.market import DEFAULT_MATCH_POLICY, Matching, MatchPolicy, mismatch
from lilypad_p2p.testing.offers import address_of, make_job_offer, make_resource_offer
from lilypad_p2p.wire import JobOffer, ResourceOffer, ResourceSpec

NOW = 1_700_000_000_000
LATER = NOW + 600_000


addr = address_of
CREATOR, PROVIDER, OTHER_PROVIDER = addr(1), addr(2), addr(3)
MEDIATOR_A, MEDIATOR_B, MEDIATOR_C = addr(10), addr(11), addr(12)
CHAIN_A, CHAIN_B = 31337, 31338


def spec(milli_cpu: int = 1000, ram_mb: int = 1024, disk_mb: int = 1000, gpus: int = 0, vram=0):
    return ResourceSpec(
        milli_cpu=milli_cpu, ram_mb=ram_mb, disk_mb=disk_mb, gpu_count=gpus, gpu_vram_mb=vram
    )


def job(
    *,
    nonce: int = 0,
    need: ResourceSpec | None = None,
    module: str = "hash",
    max_price: int = 10,
    mediators: Sequence[str] = (MEDIATOR_A,),
    deadline: int = LATER,
    target: str | None = None,
    created_at: int = NOW - 1000,
    expires_at: int = LATER,
    creator: str = CREATOR,
    market: str = "cpu",
    chain_id: int = CHAIN_A,
    check_rate_ppm: int = 0,
    image: str = "",
    records_block: int = 0,
    min_completed: int = 0,
    slash_free_blocks: int = 0,
) -> JobOffer:
    return make_job_offer(
        market=market,
        job_creator=creator,
        module=module,
        image=image,
        spec=need or spec(),
        max_price_wei=max_price,
        trusted_mediators=tuple(sorted(mediators, key=str.lower)),
        chain_id=chain_id,
        check_rate_ppm=check_rate_ppm,
        records_block=records_block,
        min_completed_deals=min_completed,
        slash_free_blocks=slash_free_blocks,
        deadline=deadline,
        target_provider=target,
        created_at=created_at,
        expires_at=expires_at,
        nonce=nonce,
    )


def offer(
    *,
    nonce: int = 0,
    capacity: ResourceSpec | None = None,
    modules: Sequence[str] = ("hash",),
    price: int = 5,
    mediators: Sequence[str] = (MEDIATOR_A,),
    provider: str = PROVIDER,
    created_at: int = NOW - 1000,
    expires_at: int = LATER,
    market: str = "cpu",
    chain_ids: Sequence[int] = (CHAIN_A,),
    collateral: int = 0,
) -> ResourceOffer:
    return make_resource_offer(
        market=market,
        provider=provider,
        spec=capacity or spec(),
        modules=tuple(sorted(modules)),
        price_per_job_wei=price,
        collateral_wei=collateral,
        trusted_mediators=tuple(sorted(mediators, key=str.lower)),
        chain_ids=tuple(sorted(chain_ids)),
        created_at=created_at,
        expires_at=expires_at,
        nonce=nonce,
    )


def check_valid(
    matching: Matching,
    jobs: Sequence[JobOffer],
    resources: Sequence[ResourceOffer],
    now_ms: int,
    policy: MatchPolicy = DEFAULT_MATCH_POLICY,
) -> None:
    """Every pair satisfies every constraint and no offer hosts more than its spec."""
    by_id = {o.cid: o for o in [*jobs, *resources]}
    used: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    seen_jobs = set()
    for job_id, resource_id in matching.matches:
        assert job_id not in seen_jobs
        seen_jobs.add(job_id)
        job_offer, resource = by_id[job_id], by_id[resource_id]
        assert isinstance(job_offer, JobOffer) and isinstance(resource, ResourceOffer)
        assert mismatch(job_offer, resource, now_ms, policy) is None
        need = job_offer.spec
        for dim, value in enumerate((need.milli_cpu, need.ram_mb, need.disk_mb, need.gpu_count)):
            used[resource_id][dim] += value
    for resource_id, totals in used.items():
        cap = by_id[resource_id].spec
        assert all(
            t <= c
            for t, c in zip(
                totals, (cap.milli_cpu, cap.ram_mb, cap.disk_mb, cap.gpu_count), strict=True
            )
        ), (resource_id, totals, cap)


def brute_force_best(
    jobs: Sequence[JobOffer],
    resources: Sequence[ResourceOffer],
    now_ms: int,
    policy: MatchPolicy = DEFAULT_MATCH_POLICY,
) -> tuple[int, int]:
    """(most jobs placed, most surplus among those) over every assignment: tiny inputs only."""
    options = [
        [None] + [r for r in resources if mismatch(j, r, now_ms, policy) is None] for j in jobs
    ]
    best = (0, 0)
    for choice in itertools.product(*options):
        used: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        placed = surplus = 0
        feasible = True
        for j, r in zip(jobs, choice, strict=True):
            if r is None:
                continue
            totals = used[r.cid]
            for dim, value in enumerate(
                (j.spec.milli_cpu, j.spec.ram_mb, j.spec.disk_mb, j.spec.gpu_count)
            ):
                totals[dim] += value
            cap = r.spec
            if any(
                t > c
                for t, c in zip(
                    totals, (cap.milli_cpu, cap.ram_mb, cap.disk_mb, cap.gpu_count), strict=True
                )
            ):
                feasible = False
                break
            placed += 1
            surplus += j.max_price_wei - r.price_per_job_wei
        if feasible:
            best = max(best, (placed, surplus))
    return best
