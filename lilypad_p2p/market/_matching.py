"""Batch matching of one market's offers. Pure and deterministic; time is an argument.

`match(job_offers, resource_offers, now_ms, epoch=...)` is a function of the offer SET: inputs
are de-duplicated by offer ID and put in canonical order (created_at, then ID) before anything
else happens, so two solvers holding the same offers compute the same `Matching` whatever order
their offers arrived in.

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

Objective, lexicographic: most matched jobs, then most surplus (sum of max_price - price), then
the older jobs (the sorted list of matched jobs' canonical ranks, smallest first), then each job,
oldest first, on the offer it ranks first among equally priced ones. This total order (`_Key`)
decides between candidate matchings; it never depends on anything but the offer set and the
recent load every solver hears.

Spreading work. Among offers of one price a job that names a records block ranks first the
better standing (`_record_rank.py`, which also gives newcomers their share); then every job
ranks first the offers of providers with the fewest recent matches (`recent_matches`: jobs
proposed on each offer within the hold window, which every solver derives from the same heard
proposals). Offers equal in both are ordered by
a draw, `sha256(offer ID)`, and that run is rotated for each job to start at `sha256(job ID)`
modulo its length: every solver computes the same order, but each job prefers different
providers, so neither the oldest offer nor any other wins every job.

Algorithm. With vector capacities, maximum-cardinality assignment is multi-dimensional bin
packing with assignment restrictions, NP-hard; so the exact answer is sought only on small
instances and a deterministic heuristic covers the rest. Let J jobs, R resource offers, E
compatible pairs, h the jobs one offer hosts.
1. Compatible pairs: resource offers indexed by module and sorted by price, so a job only checks
   the affordable offers that run its module. O(J·R) in the worst case, O(E) typically.
2. Two constructions: first-fit (Lilypad's rule: oldest job first, cheapest offer that still
   fits, equal prices in one order for every job, O(E log E)) and scarcity-first best-fit (jobs
   with the fewest compatible offers first, larger first, each on the offer it leaves least
   slack in, O(E)).
3. Each is improved. Augmenting paths: an unmatched job enters an offer, if needed evicting one
   hosted job that then moves on the same way (each offer entered once per search, depth <=
   AUGMENT_MAX_DEPTH; swapping two interchangeable jobs, same needs and options, is skipped).
   With unit capacities (an offer fits one job) this is Kuhn's augmenting-path algorithm, which
   reaches a maximum bipartite matching (Hopcroft-Karp finds the same paths in phases; a test
   checks we reach the maximum); with vector capacities it is a local search. Then surplus:
   each matched job moves to a cheaper offer where it fits, then augmenting again on the room
   freed. Every option scanned and eviction tried is a step; a search may take
   AUGMENT_SEARCH_BUDGET steps and all of them `improvement_budget` steps, so the work is
   O(E + budget) and, being counted in steps rather than time, the same on every solver.
   Augmenting never loses a match and the surplus pass never lowers (matches, surplus), so the
   result places at least as many jobs as first-fit, always.
4. The best of the two candidates by the objective is kept, and its jobs are spread over the
   offers they rank higher at the same price (`_spread`, O(E)): both constructions pack, and
   this spreads without changing matches or surplus. When J <= EXACT_MAX_JOBS, an exact
   branch and bound (jobs with fewest options first; each job on a fitting offer or
   unmatched; bounds on matches and surplus) starts from it as the incumbent, and stops after
   `exact_node_budget` nodes, a count, not a time, so every solver stops at the same node.
   `proven_optimal` says whether the search finished.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from lilypad_p2p.market._consortium import collateral_covers_check_rate
from lilypad_p2p.market._module_policy import is_module_id_entry, offer_accepts
from lilypad_p2p.market._record_rank import (
    RecordsAt,
    order_by_records,
    record_refusal,
    records_for,
    standing_of,
)
from lilypad_p2p.wire import MAX_MATCHES, JobOffer, MatchProposal, ResourceOffer, ResourceSpec

# Default length of a matching epoch (DESIGN.md §5).
EPOCH_MS = 500
# A consortium needs at least this many mediators both sides trust.
DEFAULT_MIN_COMMON_MEDIATORS = 1
# Time from a match to the job's result, assumed when checking that a deadline is reachable
# (agreement, opening the deal on chain, moving inputs, running, returning the result).
DEFAULT_EXECUTION_ESTIMATE_MS = 15_000
# Exact search only for markets with at most this many jobs, and at most this many nodes.
EXACT_MAX_JOBS = 12
DEFAULT_EXACT_NODE_BUDGET = 10_000
# Budget of the heuristic's improvement passes (options scanned, evictions tried, moves), and
# the longest chain of evictions one augmenting search follows (bounded by Python's stack).
DEFAULT_IMPROVEMENT_BUDGET = 100_000
AUGMENT_MAX_DEPTH = 64
# Steps one unmatched job's search may take: a hopeless job cannot eat everyone's budget.
AUGMENT_SEARCH_BUDGET = 2000

_UNMATCHED = -1
_Vector = tuple[int, int, int, int]  # milli-CPU, RAM MB, disk MB, GPU count


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


@dataclass(frozen=True, slots=True)
class Matching:
    """A matching of one market for one epoch.

    `matches` are (job offer ID, resource offer ID) pairs sorted as a `MatchProposal` wants
    them; `placed` and `surplus_wei` are the objective's first two terms.
    """

    epoch: int
    matches: tuple[tuple[str, str], ...]
    surplus_wei: int
    proven_optimal: bool

    @property
    def placed(self) -> int:
        return len(self.matches)

    def __post_init__(self) -> None:
        if list(self.matches) != sorted(self.matches):
            raise ValueError("matches must be sorted")
        jobs = [job for job, _ in self.matches]
        if len(set(jobs)) != len(jobs):
            raise ValueError("a job appears in more than one match")


def epoch_of(now_ms: int, epoch_ms: int = EPOCH_MS) -> int:
    """The epoch `now_ms` falls in."""
    return now_ms // epoch_ms


def epoch_end_ms(epoch: int, epoch_ms: int = EPOCH_MS) -> int:
    """The first millisecond after `epoch`."""
    return (epoch + 1) * epoch_ms


# --- constraints -------------------------------------------------------------------------


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


def _vector(spec_owner: JobOffer | ResourceOffer) -> _Vector:
    spec = spec_owner.spec
    return (spec.milli_cpu, spec.ram_mb, spec.disk_mb, spec.gpu_count)


def _room_left(resource: ResourceOffer, promised: Sequence[ResourceSpec]) -> _Vector:
    """The offer's capacity minus what recent proposals already promised on it."""
    spec = resource.spec
    return (
        max(0, spec.milli_cpu - sum(s.milli_cpu for s in promised)),
        max(0, spec.ram_mb - sum(s.ram_mb for s in promised)),
        max(0, spec.disk_mb - sum(s.disk_mb for s in promised)),
        max(0, spec.gpu_count - sum(s.gpu_count for s in promised)),
    )


def _fits(need: _Vector, room: _Vector | list[int]) -> bool:
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
    if not _fits(_vector(job), _vector(resource)):
        return "spec does not fit"
    if job.spec.gpu_count and job.spec.gpu_vram_mb > resource.spec.gpu_vram_mb:
        return "GPU VRAM too small"
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


# --- the problem in canonical order --------------------------------------------------------


_AnyOffer = TypeVar("_AnyOffer", JobOffer, ResourceOffer)


def _canonical(offers: Iterable[_AnyOffer], now_ms: int) -> tuple[list[_AnyOffer], list[str]]:
    """The open offers, de-duplicated and sorted by (created_at, ID), and their IDs."""
    unique = {offer.cid: offer for offer in offers if is_open(offer, now_ms)}
    ordered = sorted(unique.items(), key=lambda item: (item[1].created_at, item[0]))
    return [offer for _, offer in ordered], [cid for cid, _ in ordered]


@dataclass(slots=True)
class _Problem:
    """Offers in canonical order (a job's or offer's index is its rank by age, then ID)."""

    jobs: list[JobOffer]
    job_ids: list[str]
    resources: list[ResourceOffer]
    resource_ids: list[str]
    prices: list[int]
    need: list[_Vector]
    capacity: list[_Vector]
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
    need, vram = _vector(job), job.spec.gpu_vram_mb
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


def _build_problem(
    job_offers: Iterable[JobOffer],
    resource_offers: Iterable[ResourceOffer],
    now_ms: int,
    policy: MatchPolicy,
    reserved: Mapping[str, Sequence[ResourceSpec]],
    recent_matches: Mapping[str, int],
    records: RecordsAt,
) -> _Problem:
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
            options.append(_rotate_tiers(compatible, job_tier, _draw(job_id)))
        else:
            options.append(_rotate_tiers(compatible, tier, _draw(job_id)))
        unrotated.append(compatible)
    return _Problem(
        jobs=jobs,
        job_ids=job_ids,
        resources=resources,
        resource_ids=resource_ids,
        prices=prices,
        need=[_vector(job) for job in jobs],
        capacity=[
            _room_left(offer, reserved.get(offer_id, ()))
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


def _kinds(jobs: list[JobOffer], options: list[list[int]]) -> list[int]:
    first_of: dict[tuple[_Vector, int, tuple[int, ...]], int] = {}
    return [
        first_of.setdefault((_vector(job), job.spec.gpu_vram_mb, tuple(options[j])), j)
        for j, job in enumerate(jobs)
    ]


# --- assignments and the objective ---------------------------------------------------------


_Key = tuple[int, int, tuple[int, ...], tuple[int, ...]]


class _Assignment:
    """Which job is on which offer, with each offer's remaining room; never over-committed."""

    __slots__ = ("hosted", "of_job", "problem", "room")

    def __init__(self, problem: _Problem) -> None:
        self.problem = problem
        self.of_job = [_UNMATCHED] * len(problem.jobs)
        self.room = [list(capacity) for capacity in problem.capacity]
        self.hosted: list[list[int]] = [[] for _ in problem.resources]

    def copy(self) -> _Assignment:
        other = _Assignment.__new__(_Assignment)
        other.problem = self.problem
        other.of_job = list(self.of_job)
        other.room = [list(room) for room in self.room]
        other.hosted = [list(jobs) for jobs in self.hosted]
        return other

    def fits(self, j: int, r: int) -> bool:
        return _fits(self.problem.need[j], self.room[r])

    def place(self, j: int, r: int) -> None:
        need, room = self.problem.need[j], self.room[r]
        if self.of_job[j] != _UNMATCHED or not _fits(need, room):
            raise AssertionError(f"placing job {j} on offer {r} would over-commit it")
        for dim in range(4):
            room[dim] -= need[dim]
        self.of_job[j] = r
        self.hosted[r].append(j)

    def remove(self, j: int) -> int:
        r = self.of_job[j]
        need, room = self.problem.need[j], self.room[r]
        for dim in range(4):
            room[dim] += need[dim]
        self.of_job[j] = _UNMATCHED
        self.hosted[r].remove(j)
        return r

    def key(self) -> _Key:
        """Smaller is better (see the module docstring's objective)."""
        problem = self.problem
        matched = [j for j, r in enumerate(self.of_job) if r != _UNMATCHED]
        surplus = sum(problem.surplus(j, self.of_job[j]) for j in matched)
        ranks = tuple(problem.options[j].index(self.of_job[j]) for j in matched)
        return (-len(matched), -surplus, tuple(matched), ranks)


class _Budget:
    __slots__ = ("left",)

    def __init__(self, steps: int) -> None:
        self.left = steps

    def spend(self) -> bool:
        self.left -= 1
        return self.left >= 0


# --- constructions -------------------------------------------------------------------------


def _first_fit(problem: _Problem) -> _Assignment:
    """Lilypad's rule: each job, oldest first, on its first option with room, taking options
    in one order for every job (so it packs)."""
    assignment = _Assignment(problem)
    for j, options in enumerate(problem.unrotated):
        for r in options:
            if assignment.fits(j, r):
                assignment.place(j, r)
                break
    return assignment


def _best_fit_scarce_first(problem: _Problem) -> _Assignment:
    total = [max(1, sum(c[dim] for c in problem.capacity)) for dim in range(4)]

    def size(j: int) -> float:
        return sum(problem.need[j][dim] / total[dim] for dim in range(4))

    # Slack is measured in shares of each offer's own capacity (floats: IEEE-754 doubles give
    # every solver the same values for the same operations).
    inverse = [tuple(1 / max(1, c) for c in capacity) for capacity in problem.capacity]
    order = sorted(range(len(problem.jobs)), key=lambda j: (len(problem.options[j]), -size(j), j))
    assignment = _Assignment(problem)
    rooms = assignment.room
    for j in order:
        cpu, ram, disk, gpu = problem.need[j]
        best, best_slack = _UNMATCHED, float("inf")
        for r in problem.options[j]:
            room = rooms[r]
            if cpu <= room[0] and ram <= room[1] and disk <= room[2] and gpu <= room[3]:
                share = inverse[r]
                slack = (
                    (room[0] - cpu) * share[0]
                    + (room[1] - ram) * share[1]
                    + (room[2] - disk) * share[2]
                    + (room[3] - gpu) * share[3]
                )
                if slack < best_slack:  # ties go to the job's earlier option
                    best, best_slack = r, slack
        if best != _UNMATCHED:
            assignment.place(j, best)
    return assignment


# --- improvement ---------------------------------------------------------------------------


def _augment_from(
    assignment: _Assignment, j: int, explored: set[int], depth: int, budget: _Budget
) -> bool:
    """Place unmatched job `j`, evicting and re-placing hosted jobs along one path if needed.

    Each offer is entered at most once per search (`explored`), as in Kuhn's algorithm.
    """
    problem = assignment.problem
    options = problem.options[j]
    for r in options:
        if not budget.spend():
            return False
        if r not in explored and assignment.fits(j, r):
            assignment.place(j, r)
            return True
    if depth >= AUGMENT_MAX_DEPTH:
        return False
    need, kind = problem.need[j], problem.kind[j]
    for r in options:
        if r in explored:
            continue
        explored.add(r)
        for evicted in list(assignment.hosted[r]):
            if not budget.spend():
                return False
            if problem.kind[evicted] == kind:
                continue  # swapping two interchangeable jobs changes nothing
            room, freed = assignment.room[r], problem.need[evicted]
            if not all(need[dim] <= room[dim] + freed[dim] for dim in range(4)):
                continue
            assignment.remove(evicted)
            assignment.place(j, r)
            if _augment_from(assignment, evicted, explored, depth + 1, budget):
                return True
            assignment.remove(j)
            assignment.place(evicted, r)
    return False


def _augment(assignment: _Assignment, budget: _Budget) -> None:
    for j, r in enumerate(assignment.of_job):
        if r != _UNMATCHED or not assignment.problem.options[j]:
            continue
        if budget.left <= 0:
            return
        allowed = min(budget.left, AUGMENT_SEARCH_BUDGET)
        search = _Budget(allowed)
        _augment_from(assignment, j, set(), 0, search)
        budget.left -= allowed - max(0, search.left)


def _move_to_cheaper(assignment: _Assignment, budget: _Budget) -> None:
    problem = assignment.problem
    for j in range(len(problem.jobs)):
        current = assignment.of_job[j]
        if current == _UNMATCHED:
            continue
        current_price = problem.prices[current]
        for r in problem.options[j]:
            if not budget.spend() or problem.prices[r] >= current_price:
                break
            if assignment.fits(j, r):
                assignment.remove(j)
                assignment.place(j, r)
                break


def _spread(assignment: _Assignment) -> _Assignment:
    """The same jobs at the same prices, placed where they rank best: the packing
    constructions stack equally good jobs on one offer. O(E).

    First the matched jobs are placed afresh, oldest first, each on its first option of its
    current price with room; if that strands a job (packing mattered), each job of the packed
    assignment instead moves, oldest first, to the first such option it ranks higher.
    """
    problem = assignment.problem
    fresh = _Assignment(problem)
    for j, current in enumerate(assignment.of_job):
        if current == _UNMATCHED:
            continue
        price = problem.prices[current]
        for r in problem.options[j]:
            if problem.prices[r] == price and fresh.fits(j, r):
                fresh.place(j, r)
                break
        else:
            break
    else:
        return fresh
    for j, current in enumerate(assignment.of_job):
        if current == _UNMATCHED:
            continue
        price = problem.prices[current]
        for r in problem.options[j]:
            if r == current:
                break
            if problem.prices[r] == price and assignment.fits(j, r):
                assignment.remove(j)
                assignment.place(j, r)
                break
    return assignment


def _improve(assignment: _Assignment, budget: _Budget) -> _Assignment:
    _augment(assignment, budget)
    _move_to_cheaper(assignment, budget)
    _augment(assignment, budget)
    return assignment


# --- exact search --------------------------------------------------------------------------


class _ExactSearch:
    """Branch and bound over (job -> fitting offer or unmatched), node-count bounded."""

    def __init__(self, problem: _Problem, incumbent: _Assignment, node_budget: int) -> None:
        self.problem = problem
        self.order = sorted(range(len(problem.jobs)), key=lambda j: (len(problem.options[j]), j))
        self.best = incumbent.copy()
        self.best_key = incumbent.key()
        self.nodes_left = node_budget
        self.finished = True
        # Upper bound on the surplus jobs order[i:] can still add.
        self.surplus_tail = [0] * (len(self.order) + 1)
        for i in range(len(self.order) - 1, -1, -1):
            j = self.order[i]
            best_here = max((problem.surplus(j, r) for r in problem.options[j]), default=0)
            self.surplus_tail[i] = self.surplus_tail[i + 1] + best_here

    def run(self) -> tuple[_Assignment, bool]:
        self._search(_Assignment(self.problem), 0, 0, 0)
        return self.best, self.finished

    def _search(self, current: _Assignment, i: int, placed: int, surplus: int) -> None:
        if self.nodes_left <= 0:
            self.finished = False
            return
        self.nodes_left -= 1
        best_placed, best_surplus = -self.best_key[0], -self.best_key[1]
        possible = sum(
            1 for j in self.order[i:] if any(current.fits(j, r) for r in self.problem.options[j])
        )
        if placed + possible < best_placed:
            return
        if placed + possible == best_placed and surplus + self.surplus_tail[i] < best_surplus:
            return
        if i == len(self.order):
            key = current.key()
            if key < self.best_key:
                self.best, self.best_key = current.copy(), key
            return
        j = self.order[i]
        for r in self.problem.options[j]:
            if current.fits(j, r):
                current.place(j, r)
                self._search(current, i + 1, placed + 1, surplus + self.problem.surplus(j, r))
                current.remove(j)
        self._search(current, i + 1, placed, surplus)


# --- public entry points -------------------------------------------------------------------


def _result(assignment: _Assignment, epoch: int, proven_optimal: bool) -> Matching:
    problem = assignment.problem
    pairs = sorted(
        (problem.job_ids[j], problem.resource_ids[r])
        for j, r in enumerate(assignment.of_job)
        if r != _UNMATCHED
    )
    surplus = -assignment.key()[1]
    return Matching(
        epoch=epoch, matches=tuple(pairs), surplus_wei=surplus, proven_optimal=proven_optimal
    )


def match(
    job_offers: Iterable[JobOffer],
    resource_offers: Iterable[ResourceOffer],
    now_ms: int,
    *,
    epoch: int,
    policy: MatchPolicy = DEFAULT_MATCH_POLICY,
    reserved: Mapping[str, Sequence[ResourceSpec]] | None = None,
    recent_matches: Mapping[str, int] | None = None,
    records: RecordsAt | None = None,
) -> Matching:
    """The matching of these offers at `now_ms` (see the module docstring).

    Offers not open at `now_ms` are ignored; the result depends on the offer sets only.
    `reserved` maps a resource offer ID to the specs of jobs already promised to it (by earlier
    proposals still held, see `MatchHolds`); its capacity shrinks by their sum.
    `recent_matches` maps a resource offer ID to the jobs proposed on it within the hold window
    (`Held.recent_matches`): equally priced offers of less loaded providers rank first.
    `records` holds providers' track records at the blocks jobs name (`_record_rank.py`); a
    job naming a block it lacks is not matched.
    """
    problem = _build_problem(
        job_offers, resource_offers, now_ms, policy, reserved or {}, recent_matches or {},
        records or {},
    )
    budget = _Budget(policy.improvement_budget)
    candidates = [
        _improve(_first_fit(problem), budget),
        _improve(_best_fit_scarce_first(problem), budget),
    ]
    best = _spread(min(candidates, key=_Assignment.key))
    proven_optimal = False
    if len(problem.jobs) <= EXACT_MAX_JOBS:
        best, proven_optimal = _ExactSearch(problem, best, policy.exact_node_budget).run()
    return _result(best, epoch, proven_optimal)


def first_fit(
    job_offers: Iterable[JobOffer],
    resource_offers: Iterable[ResourceOffer],
    now_ms: int,
    *,
    epoch: int,
    policy: MatchPolicy = DEFAULT_MATCH_POLICY,
    reserved: Mapping[str, Sequence[ResourceSpec]] | None = None,
    records: RecordsAt | None = None,
) -> Matching:
    """Lilypad's rule, for comparison: oldest job first, on the cheapest offer that still has
    room (equal prices in one fixed order), under the same constraints as `match`."""
    problem = _build_problem(job_offers, resource_offers, now_ms, policy, reserved or {}, {},
                             records or {})
    return _result(_first_fit(problem), epoch, proven_optimal=False)


# --- proposals and holds -------------------------------------------------------------------

# A proposal is advice for this long after its epoch ends.
PROPOSAL_LIFETIME_MS = 30_000
# How long offers matched in a proposal sit out later epochs (the time a deal has to be signed;
# Lilypad's match timeout is 30 s). After it, a job still open is matched again.
DEFAULT_MATCH_HOLD_MS = 30_000


def proposals_for(
    matching: Matching, *, market: str, solver: str, epoch_ms: int = EPOCH_MS
) -> list[MatchProposal]:
    """The MatchProposals announcing `matching`; none if it is empty.

    Every field is a function of the matching, the market and the solver: created_at is the
    epoch's end, expires_at PROPOSAL_LIFETIME_MS later, nonce 0 (the epoch already makes a
    proposal unique). So one solver proposes byte-identical bodies for the same offers, and
    two solvers' bodies differ in `solver` only and share their `matching_id`. A matching with
    more than MAX_MATCHES pairs goes out in sorted chunks, each its own proposal.
    """
    created_at = epoch_end_ms(matching.epoch, epoch_ms)
    pairs = matching.matches
    return [
        MatchProposal(
            market=market,
            epoch=matching.epoch,
            solver=solver,
            matches=pairs[start : start + MAX_MATCHES],
            created_at=created_at,
            expires_at=created_at + PROPOSAL_LIFETIME_MS,
            nonce=0,
        )
        for start in range(0, len(pairs), MAX_MATCHES)
    ]


# (job offer ID, resource offer ID, the job's spec)
HeldPair = tuple[str, str, ResourceSpec]


def vet_proposal(
    proposal: MatchProposal,
    offer_of: Callable[[str], JobOffer | ResourceOffer | None],
    *,
    epoch_ms: int = EPOCH_MS,
    policy: MatchPolicy = DEFAULT_MATCH_POLICY,
    records: Callable[[Iterable[JobOffer]], RecordsAt] | None = None,
) -> tuple[HeldPair, ...] | None:
    """The pairs of a heard proposal worth holding, or None if the proposal is invalid.

    Invalid (None): a pair of offers we hold that breaks a constraint at the end of the
    proposal's epoch, or jobs on one offer that exceed its capacity: no honest solver proposes
    those. Pairs naming an offer we do not hold are left out: a made-up offer ID must not hold
    a real job out of matching. A job's record requirement is checked where `records` has the
    records of its block; a solver without them cannot match the job anyway, so it holds it.
    """
    now_ms = epoch_end_ms(proposal.epoch, epoch_ms) - 1
    pairs: list[HeldPair] = []
    used: dict[str, list[int]] = {}
    for job_id, resource_id in proposal.matches:
        job, resource = offer_of(job_id), offer_of(resource_id)
        if not isinstance(job, JobOffer) or not isinstance(resource, ResourceOffer):
            continue
        view = records([job]) if records is not None and job.records_block else None
        if view is not None and (job.chain_id, job.records_block) not in view:
            view = None
        if mismatch(job, resource, now_ms, policy, view) is not None:
            return None
        totals = used.setdefault(resource_id, [0, 0, 0, 0])
        for dim, value in enumerate(_vector(job)):
            totals[dim] += value
        if any(total > cap for total, cap in zip(totals, _vector(resource), strict=True)):
            return None
        pairs.append((job_id, resource_id, job.spec))
    return tuple(pairs)


@dataclass(frozen=True, slots=True)
class Held:
    """What earlier proposals keep out of an epoch's matching."""

    jobs: frozenset[str]
    reserved: Mapping[str, tuple[ResourceSpec, ...]]
    # Resource offer ID -> jobs proposed on it within the hold, live or not: the recent load
    # that equally priced offers are ranked by.
    recent_matches: Mapping[str, int]


class MatchHolds:
    """Offers matched in recent proposals (ours or other solvers'), held out of later epochs.

    The rule: a job matched in a proposal for epoch e sits out epochs e' > e while
    epoch_end(e') - epoch_end(e) < hold_ms, and the jobs' specs count as used capacity of their
    resource offer for as long. A proposal for epoch e never affects epoch e itself, so a solver
    that hears another's proposal early still computes the same matching. Afterwards, a job
    still open (its deal failed or was never signed, and its owner did not cancel it) is matched
    again. Everything is in epochs, not arrival times, so solvers that heard the same proposals
    hold the same offers.
    """

    def __init__(self, hold_ms: int = DEFAULT_MATCH_HOLD_MS, epoch_ms: int = EPOCH_MS) -> None:
        if hold_ms < 0 or epoch_ms < 1:
            raise ValueError("hold_ms must be >= 0 and epoch_ms >= 1")
        self._hold_ms = hold_ms
        self._epoch_ms = epoch_ms
        # (epoch, market) -> matching ID -> pairs held
        self._by_epoch: dict[tuple[int, str], dict[str, tuple[HeldPair, ...]]] = {}

    def record(self, proposal: MatchProposal, pairs: Sequence[HeldPair]) -> bool:
        """Remember `proposal` as holding `pairs` (see `vet_proposal`); False if its matching
        was already known."""
        known = self._by_epoch.setdefault((proposal.epoch, proposal.market), {})
        matching_id = proposal.matching_id
        if matching_id in known:
            return False
        known[matching_id] = tuple(pairs)
        return True

    def knows(self, proposal: MatchProposal) -> bool:
        """Whether a proposal of the same matching (any solver's) was already recorded."""
        return proposal.matching_id in self._by_epoch.get((proposal.epoch, proposal.market), {})

    def held(self, market: str, epoch: int, live_jobs: Container[str] | None = None) -> Held:
        """The jobs and reserved capacity that proposals before `epoch` hold out of it.

        With `live_jobs`, a matched job that is no longer among them (its owner cancelled it
        once the deal was agreed, or it expired) stops reserving capacity at once instead of
        for the rest of the hold: the provider's own capacity check refuses any excess, and a
        30 s hold per job otherwise caps a market at a few matches per provider per 30 s.
        """
        jobs: set[str] = set()
        counted: set[str] = set()
        reserved: dict[str, list[ResourceSpec]] = {}
        recent: dict[str, int] = {}
        end = epoch_end_ms(epoch, self._epoch_ms)
        # Sorted, so solvers that recorded the same proposals in another order agree.
        for (held_epoch, held_market), matchings in sorted(self._by_epoch.items()):
            if held_market != market or held_epoch >= epoch:
                continue
            if end - epoch_end_ms(held_epoch, self._epoch_ms) >= self._hold_ms:
                continue
            for _, pairs in sorted(matchings.items()):
                for job, resource, spec in pairs:
                    if job not in counted:
                        counted.add(job)
                        recent[resource] = recent.get(resource, 0) + 1
                    if job in jobs:
                        continue  # two matchings of one job reserve capacity once
                    if live_jobs is not None and job not in live_jobs:
                        continue
                    jobs.add(job)
                    reserved.setdefault(resource, []).append(spec)
        return Held(
            jobs=frozenset(jobs),
            reserved={resource: tuple(specs) for resource, specs in reserved.items()},
            recent_matches=recent,
        )

    def forget_before(self, epoch: int) -> None:
        """Drop proposals that can no longer hold anything at `epoch` or later."""
        end = epoch_end_ms(epoch, self._epoch_ms)
        for key in [
            key
            for key in self._by_epoch
            if end - epoch_end_ms(key[0], self._epoch_ms) >= self._hold_ms
        ]:
            del self._by_epoch[key]

    def __len__(self) -> int:
        return sum(len(matchings) for matchings in self._by_epoch.values())
