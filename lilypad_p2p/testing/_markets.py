"""Generated markets (job and resource offers) for matching tests and benchmarks.

Offers built here are unsigned bodies; owners are addresses derived from a seed, so a market is
a function of its seed and sizes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from eth_utils import to_checksum_address

from lilypad_p2p.wire import JobOffer, ResourceOffer, ResourceSpec

MARKET = "cpu"
MODULES = ("hash", "python", "random", "wordcount")
# Offers in generated markets live this long from `now_ms`.
OFFER_LIFETIME_MS = 600_000
# A generated job's deadline, unless it is drawn to be unreachable.
DEADLINE_AFTER_MS = 300_000
WEI_PER_PRICE_UNIT = 10**14
# Every generated offer settles on this chain (anvil's default ID); matching across chains is
# tested on hand-built offers.
CHAIN_ID = 31337
SPOT_CHECK_RATE_PPM = 100_000


def address(rng: random.Random) -> str:
    return to_checksum_address(rng.randbytes(20))


@dataclass(frozen=True, slots=True)
class MarketShape:
    """How a generated market is drawn; the defaults give a market where most pairs fit."""

    gpu_share: float = 0.1
    mediator_pool: int = 4
    target_share: float = 0.05
    unreachable_deadline_share: float = 0.05
    expired_share: float = 0.02


def resource_offer(
    rng: random.Random, now_ms: int, *, provider: str, mediators: tuple[str, ...], gpu: bool
) -> ResourceOffer:
    gpu_count = rng.choice((1, 2, 4)) if gpu else 0
    return ResourceOffer(
        market=MARKET,
        provider=provider,
        spec=ResourceSpec(
            milli_cpu=rng.choice((2000, 4000, 8000, 16000)),
            ram_mb=rng.choice((4096, 8192, 16384, 32768)),
            disk_mb=rng.choice((20_000, 50_000, 100_000)),
            gpu_count=gpu_count,
            gpu_vram_mb=rng.choice((8192, 16384, 24576)) if gpu_count else 0,
        ),
        modules=tuple(sorted(rng.sample(MODULES, rng.randint(1, len(MODULES))))),
        price_per_job_wei=rng.randint(1, 10) * WEI_PER_PRICE_UNIT,
        collateral_wei=2 * 10 * WEI_PER_PRICE_UNIT,
        trusted_mediators=tuple(sorted(mediators, key=str.lower)),
        chain_ids=(CHAIN_ID,),
        created_at=now_ms - rng.randint(0, 60_000),
        expires_at=now_ms + OFFER_LIFETIME_MS,
        nonce=rng.getrandbits(32),
    )


def job_offer(
    rng: random.Random,
    now_ms: int,
    *,
    mediators: tuple[str, ...],
    gpu: bool,
    target: str | None,
    deadline: int,
    expired: bool,
) -> JobOffer:
    gpu_count = rng.choice((1, 2)) if gpu else 0
    created_at = now_ms - rng.randint(0, 60_000)
    expires_at = now_ms - 1 if expired else now_ms + OFFER_LIFETIME_MS // 2
    return JobOffer(
        market=MARKET,
        job_creator=address(rng),
        module=rng.choice(MODULES),
        spec=ResourceSpec(
            milli_cpu=rng.choice((250, 500, 1000, 2000, 4000)),
            ram_mb=rng.choice((256, 1024, 2048, 4096, 8192)),
            disk_mb=rng.choice((100, 1000, 10_000)),
            gpu_count=gpu_count,
            gpu_vram_mb=rng.choice((4096, 16384)) if gpu_count else 0,
        ),
        max_price_wei=rng.randint(1, 12) * WEI_PER_PRICE_UNIT,
        trusted_mediators=tuple(sorted(mediators, key=str.lower)),
        deadline=max(deadline, expires_at),
        target_provider=target,
        chain_id=CHAIN_ID,
        # A quarter of the jobs spot-check 10 %: their collateral rule bites on pricier offers.
        # Derived from a value already drawn, so the generator's random stream is unchanged.
        check_rate_ppm=SPOT_CHECK_RATE_PPM if created_at % 4 == 0 else 0,
        created_at=min(created_at, expires_at - 1),
        expires_at=expires_at,
        inputs_commitment=bytes(32),
        nonce=rng.getrandbits(32),
    )


def random_market(
    seed: int, jobs: int, resources: int, now_ms: int, shape: MarketShape = MarketShape()
) -> tuple[list[JobOffer], list[ResourceOffer]]:
    """A market drawn from `seed`: `jobs` job offers and `resources` resource offers."""
    rng = random.Random(seed)
    pool = [address(rng) for _ in range(shape.mediator_pool)]

    def some_mediators() -> tuple[str, ...]:
        return tuple(rng.sample(pool, rng.choice((0, 1, 1, 2, 3))))

    providers = [address(rng) for _ in range(max(1, resources))]
    resource_offers = [
        resource_offer(
            rng,
            now_ms,
            provider=providers[i],
            mediators=some_mediators(),
            gpu=rng.random() < shape.gpu_share,
        )
        for i in range(resources)
    ]
    job_offers = []
    for _ in range(jobs):
        unreachable = rng.random() < shape.unreachable_deadline_share
        job_offers.append(
            job_offer(
                rng,
                now_ms,
                mediators=some_mediators(),
                gpu=rng.random() < shape.gpu_share,
                target=rng.choice(providers) if rng.random() < shape.target_share else None,
                deadline=now_ms + (1000 if unreachable else DEADLINE_AFTER_MS),
                expired=rng.random() < shape.expired_share,
            )
        )
    return job_offers, resource_offers


def first_fit_trap(pairs: int, now_ms: int) -> tuple[list[JobOffer], list[ResourceOffer]]:
    """A market first-fit only half fills: it places 3·pairs/2 jobs where 2·pairs fit.

    `pairs` cheap offers of 2000 milli-CPU and `pairs` dearer ones of 1000; `pairs` old small
    jobs (1000) and `pairs` newer big ones (2000). First-fit puts the small jobs, oldest first,
    two by two on the cheap offers, leaving half the big jobs nowhere to go; a maximum matching
    puts the small jobs on the dear offers and every big job on a cheap one.
    """
    rng = random.Random(pairs)
    creator, mediator = address(rng), (address(rng),)

    def offer(index: int, milli_cpu: int, price_units: int) -> ResourceOffer:
        return ResourceOffer(
            market=MARKET,
            provider=address(rng),
            spec=ResourceSpec(milli_cpu=milli_cpu, ram_mb=4096, disk_mb=10_000),
            modules=("hash",),
            price_per_job_wei=price_units * WEI_PER_PRICE_UNIT,
            collateral_wei=0,
            trusted_mediators=mediator,
            chain_ids=(CHAIN_ID,),
            created_at=now_ms - 1000 + index,
            expires_at=now_ms + OFFER_LIFETIME_MS,
            nonce=index,
        )

    def job(index: int, milli_cpu: int) -> JobOffer:
        return JobOffer(
            market=MARKET,
            job_creator=creator,
            module="hash",
            spec=ResourceSpec(milli_cpu=milli_cpu, ram_mb=512, disk_mb=100),
            max_price_wei=10 * WEI_PER_PRICE_UNIT,
            trusted_mediators=mediator,
            chain_id=CHAIN_ID,
            deadline=now_ms + DEADLINE_AFTER_MS,
            created_at=now_ms - 1000 + index,
            expires_at=now_ms + OFFER_LIFETIME_MS // 2,
            inputs_commitment=bytes(32),
            nonce=index,
        )

    resources = [offer(i, 2000, 1) for i in range(pairs)]
    resources += [offer(pairs + i, 1000, 5) for i in range(pairs)]
    jobs = [job(i, 1000) for i in range(pairs)] + [job(pairs + i, 2000) for i in range(pairs)]
    return jobs, resources
