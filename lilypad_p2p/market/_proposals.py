"""Matching epochs, the proposals that announce a matching, and the holds they put on offers.

A solver matches a market once per epoch and gossips the result as `MatchProposal`s; it vets
the proposals it hears (`vet_proposal`) and holds their offers out of later epochs for a while
(`MatchHolds`), so solvers that heard the same proposals hold the same offers.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass

from lilypad_p2p.market._constraints import DEFAULT_MATCH_POLICY, MatchPolicy, mismatch, vector
from lilypad_p2p.market._matching import Matching
from lilypad_p2p.market._record_rank import RecordsAt
from lilypad_p2p.wire import MAX_MATCHES, JobOffer, MatchProposal, ResourceOffer, ResourceSpec

# Default length of a matching epoch (DESIGN.md §5).
EPOCH_MS = 500


def epoch_of(now_ms: int, epoch_ms: int = EPOCH_MS) -> int:
    """The epoch `now_ms` falls in."""
    return now_ms // epoch_ms


def epoch_end_ms(epoch: int, epoch_ms: int = EPOCH_MS) -> int:
    """The first millisecond after `epoch`."""
    return (epoch + 1) * epoch_ms


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
        for dim, value in enumerate(vector(job)):
            totals[dim] += value
        if any(total > cap for total, cap in zip(totals, vector(resource), strict=True)):
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
