"""What a node sees of its market: recent matches, going prices, and why an offer lost.

`MarketWatch` remembers the pairs of the match proposals heard in the last RECENT_MATCH_MS
(with the offers they name, so a job still counts once its owner cancelled it); pure functions
turn that into the going price (`price_summary`) and, for one of our resource offers, the
reason each recent job went elsewhere or nowhere (`why_not_matched`): a provider learns
whether its price, its spec, its modules, its mediators, its chains or its capacity cost it
the work.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from lilypad_p2p.market._constraints import DEFAULT_MATCH_POLICY, MatchPolicy, mismatch
from lilypad_p2p.market._proposals import epoch_end_ms
from lilypad_p2p.market._record_rank import RecordsAt
from lilypad_p2p.wire import JobOffer, MatchProposal, ResourceOffer

# How far back matches count as "recent" (the hold window: 60 epochs of 500 ms).
RECENT_MATCH_MS = 30_000
# Most matches remembered (a busy market; the oldest are forgotten first).
MAX_REMEMBERED_MATCHES = 20_000

# Why a job did not go to our offer, as `why_not_matched` names it.
MATCHED = "matched"
PRICE = "price"  # above the job's maximum
OUTBID = "outbid"  # a cheaper offer won the job
TIE_LOST = "tie lost"  # an offer of the same price won the job
COLLATERAL = "collateral"
RESOURCES = "resources"
MODULE = "module"
MEDIATORS = "mediators"
CHAIN = "chain"
DEADLINE = "deadline"
RECORD = "record"
TARGETED = "targeted"
CAPACITY = "capacity"  # compatible, but our offer's room was promised to other jobs
UNMATCHED = "not matched"  # compatible and room left, yet no solver matched it to anyone

_CATEGORY_OF_MISMATCH = {
    "chain not accepted": CHAIN,
    "job targets another provider": TARGETED,
    "module not offered": MODULE,
    "price above the job's maximum": PRICE,
    "collateral below price / check rate": COLLATERAL,
    "spec does not fit": RESOURCES,
    "GPU VRAM too small": RESOURCES,
    "no common mediators": MEDIATORS,
    "deadline unreachable": DEADLINE,
    "records not known at the job's block": RECORD,
}


@dataclass(frozen=True, slots=True)
class HeardMatch:
    """One pair of a heard proposal, with what the offers said."""

    job: JobOffer
    resource_id: str
    provider: str
    price_wei: int
    at_ms: int  # the end of the proposal's epoch


class MarketWatch:
    """The matches heard recently, per market (see the module docstring)."""

    def __init__(self, recent_ms: int = RECENT_MATCH_MS,
                 max_matches: int = MAX_REMEMBERED_MATCHES) -> None:
        self._recent_ms = recent_ms
        self._max = max_matches
        self._matches: dict[str, HeardMatch] = {}  # job ID -> its latest match

    def observe(self, proposal: MatchProposal,
                offer_of: Callable[[str], JobOffer | ResourceOffer | None]) -> int:
        """Remember the proposal's pairs whose offers we hold; how many were new."""
        at_ms = epoch_end_ms(proposal.epoch)
        added = 0
        for job_id, resource_id in proposal.matches:
            job, resource = offer_of(job_id), offer_of(resource_id)
            if not isinstance(job, JobOffer) or not isinstance(resource, ResourceOffer):
                continue
            known = self._matches.get(job_id)
            if known is not None and known.at_ms >= at_ms:
                continue
            self._matches.pop(job_id, None)  # re-inserted last: dicts keep insertion order
            self._matches[job_id] = HeardMatch(job, resource_id, resource.provider,
                                               resource.price_per_job_wei, at_ms)
            added += 1
        while len(self._matches) > self._max:
            del self._matches[next(iter(self._matches))]
        return added

    def recent(self, market: str, now_ms: int) -> list[HeardMatch]:
        """The market's matches of the last `recent_ms`, oldest first."""
        since = now_ms - self._recent_ms
        for job_id in [j for j, m in self._matches.items() if m.at_ms < since]:
            del self._matches[job_id]
        return sorted((m for m in self._matches.values() if m.job.market == market),
                      key=lambda m: (m.at_ms, m.job.cid))


@dataclass(frozen=True, slots=True)
class PriceSummary:
    """Matched prices in wei: how many, the last, and percentiles (nearest rank)."""

    count: int
    last: int | None
    p10: int | None
    p50: int | None
    p90: int | None


def _nearest_rank(ordered: Sequence[int], percent: int) -> int:
    rank = max(1, -(-percent * len(ordered) // 100))
    return ordered[rank - 1]


def price_summary(prices: Sequence[int]) -> PriceSummary:
    """The going price from matched prices in the order they were matched."""
    if not prices:
        return PriceSummary(0, None, None, None, None)
    ordered = sorted(prices)
    return PriceSummary(len(prices), prices[-1], _nearest_rank(ordered, 10),
                        _nearest_rank(ordered, 50), _nearest_rank(ordered, 90))


def why_not_matched(
    offer: ResourceOffer,
    offer_id: str,
    jobs: Iterable[JobOffer],
    matches: Mapping[str, HeardMatch],
    now_ms: int,
    *,
    policy: MatchPolicy = DEFAULT_MATCH_POLICY,
    records: RecordsAt | None = None,
) -> dict[str, tuple[str, str]]:
    """Per job ID: (category, detail) saying why it did not go to our `offer`, or MATCHED.

    `jobs` are the jobs of the offer's market seen recently (open or matched); `matches` the
    recent match of each job that had one. Constraints are checked while the job was open: at
    its match, or now for a job still waiting.
    """
    promised = [m.job.spec for m in matches.values() if m.resource_id == offer_id]
    room = offer.spec
    used = tuple(sum(getattr(spec, dim) for spec in promised)
                 for dim in ("milli_cpu", "ram_mb", "disk_mb", "gpu_count"))
    reasons: dict[str, tuple[str, str]] = {}
    for job in jobs:
        job_id = job.cid
        match = matches.get(job_id)
        if match is not None and match.resource_id == offer_id:
            reasons[job_id] = (MATCHED, "")
            continue
        at_ms = match.at_ms - 1 if match is not None else now_ms
        checked_at = max(min(at_ms, job.expires_at - 1, offer.expires_at - 1),
                         job.created_at, offer.created_at)
        reason = mismatch(job, offer, checked_at, policy, records)
        if reason is not None:
            category = RECORD if reason.startswith("record:") else _CATEGORY_OF_MISMATCH.get(
                reason, reason)
            reasons[job_id] = (category, reason)
            continue
        need = (job.spec.milli_cpu, job.spec.ram_mb, job.spec.disk_mb, job.spec.gpu_count)
        fits = all(n + taken <= have for n, taken, have in zip(
            need, used, (room.milli_cpu, room.ram_mb, room.disk_mb, room.gpu_count), strict=True))
        if match is not None and match.price_wei < offer.price_per_job_wei:
            reasons[job_id] = (OUTBID, f"{match.provider} asked {match.price_wei} wei, "
                                       f"we ask {offer.price_per_job_wei}")
        elif not fits:
            reasons[job_id] = (CAPACITY, f"{len(promised)} recent jobs hold our offer's room")
        elif match is not None:
            reasons[job_id] = (TIE_LOST, f"{match.provider} asked the same "
                                         f"({match.price_wei} wei) and won the tie")
        else:
            reasons[job_id] = (UNMATCHED, "compatible: no solver has matched it yet")
    return reasons


def reason_counts(reasons: Mapping[str, tuple[str, str]]) -> dict[str, int]:
    """How many jobs each category cost, most first (ties by name)."""
    counts = Counter(category for category, _ in reasons.values())
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
