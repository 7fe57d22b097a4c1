"""Batch matching of one market's offers. Pure and deterministic; time is an argument.

`match(job_offers, resource_offers, now_ms, epoch=...)` is a function of the offer SET: inputs
are de-duplicated by offer ID and put in canonical order (created_at, then ID) before anything
else happens, so two solvers holding the same offers compute the same `Matching` whatever order
their offers arrived in.

The constraints a pair must meet are in `_constraints.py`; the problem (offers in canonical
order, each job's options ranked) is built by `_match_problem.py`; proposals announcing a
matching and the holds they put on offers are in `_proposals.py`.

Objective, lexicographic: most matched jobs, then most surplus (sum of max_price - price), then
the older jobs (the sorted list of matched jobs' canonical ranks, smallest first), then each job,
oldest first, on the offer it ranks first among equally priced ones. This total order (`_Key`)
decides between candidate matchings; it never depends on anything but the offer set and the
recent load every solver hears.

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
   unmatched; bounds on matches, surplus and, where those tie, the tie-breaks: no job can do
   better than its first option) starts from it as the incumbent, and stops after
   `exact_node_budget` nodes, a count, not a time, so every solver stops at the same node.
   `proven_optimal` says whether the search finished.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from lilypad_p2p.market._constraints import DEFAULT_MATCH_POLICY, MatchPolicy, fits_in
from lilypad_p2p.market._match_problem import Problem, build_problem
from lilypad_p2p.market._record_rank import RecordsAt
from lilypad_p2p.wire import JobOffer, ResourceOffer, ResourceSpec

# Exact search only for markets with at most this many jobs (and `exact_node_budget` nodes).
EXACT_MAX_JOBS = 12
# The longest chain of evictions one augmenting search follows (bounded by Python's stack).
AUGMENT_MAX_DEPTH = 64
# Steps one unmatched job's search may take: a hopeless job cannot eat everyone's budget.
AUGMENT_SEARCH_BUDGET = 2000

_UNMATCHED = -1


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


# --- assignments and the objective ---------------------------------------------------------


_Key = tuple[int, int, tuple[int, ...], tuple[int, ...]]


class _Assignment:
    """Which job is on which offer, with each offer's remaining room; never over-committed."""

    __slots__ = ("hosted", "of_job", "problem", "room")

    def __init__(self, problem: Problem) -> None:
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
        return fits_in(self.problem.need[j], self.room[r])

    def place(self, j: int, r: int) -> None:
        need, room = self.problem.need[j], self.room[r]
        if self.of_job[j] != _UNMATCHED or not fits_in(need, room):
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


def _first_fit(problem: Problem) -> _Assignment:
    """Lilypad's rule: each job, oldest first, on its first option with room, taking options
    in one order for every job (so it packs)."""
    assignment = _Assignment(problem)
    for j, options in enumerate(problem.unrotated):
        for r in options:
            if assignment.fits(j, r):
                assignment.place(j, r)
                break
    return assignment


def _best_fit_scarce_first(problem: Problem) -> _Assignment:
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

    def __init__(self, problem: Problem, incumbent: _Assignment, node_budget: int) -> None:
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
        options = self.problem.options
        fitting = [j for j in self.order[i:] if any(current.fits(j, r) for r in options[j])]
        if placed + len(fitting) < best_placed:
            return
        if placed + len(fitting) == best_placed:
            surplus_bound = surplus + self.surplus_tail[i]
            if surplus_bound < best_surplus or (
                surplus_bound == best_surplus
                and self._tie_break_bound(current, fitting) >= self.best_key[2:]
            ):
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

    def _tie_break_bound(
        self, current: _Assignment, fitting: list[int]
    ) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The best tie-break terms of any completion of `current` that ties the best on
        matches and surplus: such a completion matches every job that still fits, and no job
        does better than its first option. Among many equally priced offers every full
        assignment ties on matches and surplus; without this bound the search spends its whole
        node budget on ties that cannot win."""
        options = self.problem.options
        ranks = {j: options[j].index(r) for j, r in enumerate(current.of_job) if r != _UNMATCHED}
        ranks.update(dict.fromkeys(fitting, 0))
        matched = sorted(ranks)
        return tuple(matched), tuple(ranks[j] for j in matched)


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
    problem = build_problem(
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
    problem = build_problem(job_offers, resource_offers, now_ms, policy, reserved or {}, {},
                             records or {})
    return _result(_first_fit(problem), epoch, proven_optimal=False)
