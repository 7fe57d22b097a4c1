"""What makes a (job offer, resource offer) pair matchable, and the knobs of matching.

Constraints, checked in both directions for every pair (`mismatch` names the first that fails):
- both offers are open at `now_ms` (created_at <= now_ms < expires_at) and in the same market;
- the job's settlement chain is one the offer accepts (`job.chain_id in offer.chain_ids`):
  markets are shared by every chain, money stays on the deal's own chain;
- a job with `target_provider` only goes to that provider's offers;
- the resource offer's `modules` accept the job's module: its ID is listed, or one of the
  provider's policy rules accepts the job's image or spec (`_module_policy.py`);
- the provider's price is at most the job's `max_price_wei`;
- the offer's collateral covers price / the job's spot-check rate (`check_rate_ppm`), so a
  provider that cheats on a spot-checked job loses more than it could earn;
- the job's spec fits the offer's spec: milli-CPU, RAM, disk and GPU count, and a GPU job needs
  the offer's per-GPU VRAM to be at least its own;
- the consortium fits (see `common_mediators`): a side that lists mediators trusts only those; a
  side that lists none delegates the choice to the other side. With both lists non-empty the
  consortium is their intersection, with one empty it is the other's list, and the pair fits when
  the consortium (parties removed: a party cannot mediate its own deal) has at least
  `min_common_mediators` members (default 1: the contract refuses a deal without mediators).
  With both lists empty there is no consortium, so the pair does not fit unless the minimum
  is 0;
- the deadline is reachable: now_ms + `execution_estimate_ms` <= the job's deadline;
- a job naming a `records_block` only goes to providers whose track record at that block
  meets its requirement, and is left out by a solver that lacks the records (`_record_rank.py`).
A resource offer's spec is the provider's capacity for jobs running at once: the jobs matched
to one offer must fit together (per-dimension sums of milli-CPU, RAM, disk and GPU count).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lilypad_p2p.market._consortium import collateral_covers_check_rate
from lilypad_p2p.market._module_policy import offer_accepts
from lilypad_p2p.market._record_rank import RecordsAt, record_refusal, records_for
from lilypad_p2p.wire import JobOffer, ResourceOffer, ResourceSpec

# A consortium needs at least this many mediators both sides trust.
DEFAULT_MIN_COMMON_MEDIATORS = 1
# Time from a match to the job's result, assumed when checking that a deadline is reachable
# (agreement, opening the deal on chain, moving inputs, running, returning the result).
DEFAULT_EXECUTION_ESTIMATE_MS = 15_000
# Nodes the exact search may visit (`_matching.py`).
DEFAULT_EXACT_NODE_BUDGET = 10_000
# Budget of the heuristic's improvement passes (options scanned, evictions tried, moves).
DEFAULT_IMPROVEMENT_BUDGET = 100_000

Vector = tuple[int, int, int, int]  # milli-CPU, RAM MB, disk MB, GPU count


@dataclass(frozen=True, slots=True)
class MatchPolicy:
    """The knobs of matching. Every solver of a market must use the same values to agree."""

    min_common_mediators: int = DEFAULT_MIN_COMMON_MEDIATORS
    execution_estimate_ms: int = DEFAULT_EXECUTION_ESTIMATE_MS
    exact_node_budget: int = DEFAULT_EXACT_NODE_BUDGET
    improvement_budget: int = DEFAULT_IMPROVEMENT_BUDGET

    def __post_init__(self) -> None:
        for name in (
            "min_common_mediators",
            "execution_estimate_ms",
            "exact_node_budget",
            "improvement_budget",
        ):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")


DEFAULT_MATCH_POLICY = MatchPolicy()


def common_mediators(job: JobOffer, resource: ResourceOffer) -> tuple[str, ...]:
    """The deal's possible consortium: mediators both sides accept, parties removed, sorted.

    A side listing no mediators delegates the choice to the other side (module docstring);
    when neither lists any, it is empty.
    """
    if not job.trusted_mediators:
        accepted = set(resource.trusted_mediators)
    elif not resource.trusted_mediators:
        accepted = set(job.trusted_mediators)
    else:
        accepted = set(job.trusted_mediators) & set(resource.trusted_mediators)
    accepted -= {job.job_creator, resource.provider}
    return tuple(sorted(accepted, key=str.lower))


def vector(spec_owner: JobOffer | ResourceOffer) -> Vector:
    return _spec_vector(spec_owner.spec)


def _spec_vector(spec: ResourceSpec) -> Vector:
    return (spec.milli_cpu, spec.ram_mb, spec.disk_mb, spec.gpu_count)


def spec_shortfall(need: ResourceSpec, room: ResourceSpec) -> str | None:
    """Why a job needing `need` does not fit an offer of `room` (a short reason), or None."""
    if not fits_in(_spec_vector(need), _spec_vector(room)):
        return "spec does not fit"
    if need.gpu_count and need.gpu_vram_mb > room.gpu_vram_mb:
        return "GPU VRAM too small"
    return None


def room_left(resource: ResourceOffer, promised: Sequence[ResourceSpec]) -> Vector:
    """The offer's capacity minus what recent proposals already promised on it."""
    spec = resource.spec
    return (
        max(0, spec.milli_cpu - sum(s.milli_cpu for s in promised)),
        max(0, spec.ram_mb - sum(s.ram_mb for s in promised)),
        max(0, spec.disk_mb - sum(s.disk_mb for s in promised)),
        max(0, spec.gpu_count - sum(s.gpu_count for s in promised)),
    )


def fits_in(need: Vector, room: Vector | list[int]) -> bool:
    return need[0] <= room[0] and need[1] <= room[1] and need[2] <= room[2] and need[3] <= room[3]


def is_open(offer: JobOffer | ResourceOffer, now_ms: int) -> bool:
    """Whether a solver matching at `now_ms` considers the offer."""
    return offer.created_at <= now_ms < offer.expires_at


def mismatch(
    job: JobOffer,
    resource: ResourceOffer,
    now_ms: int,
    policy: MatchPolicy = DEFAULT_MATCH_POLICY,
    records: RecordsAt | None = None,
) -> str | None:
    """The first constraint the pair violates (a short reason), or None if it is compatible.

    The job's record requirement is checked only when `records` is given."""
    if not is_open(job, now_ms):
        return "job offer not open"
    if not is_open(resource, now_ms):
        return "resource offer not open"
    if job.market != resource.market:
        return "different markets"
    if job.chain_id not in resource.chain_ids:
        return "chain not accepted"
    if job.target_provider is not None and job.target_provider != resource.provider:
        return "job targets another provider"
    if not offer_accepts(resource.modules, job):
        return "module not offered"
    if resource.price_per_job_wei > job.max_price_wei:
        return "price above the job's maximum"
    if not collateral_covers_check_rate(resource.collateral_wei, resource.price_per_job_wei,
                                        job.check_rate_ppm):
        return "collateral below price / check rate"
    if (shortfall := spec_shortfall(job.spec, resource.spec)) is not None:
        return shortfall
    consortium = common_mediators(job, resource)
    if len(consortium) < policy.min_common_mediators:
        return "no common mediators"
    if now_ms + policy.execution_estimate_ms > job.deadline:
        return "deadline unreachable"
    if records is not None and job.records_block:
        known = records_for(job, records)
        if known is None:
            return "records not known at the job's block"
        refusal = record_refusal(job, resource.provider, known)
        if refusal is not None:
            return f"record: {refusal}"
    return None
