"""The solver role: at the end of every epoch, match each market's open offers and publish.

    solver = Solver(identity, book, markets=["cpu"], publish=net.publish)
    await nursery.start(solver.run)
    solver.observe(envelope)        # every MatchProposal the network delivers

The work per epoch is `plan_epoch`, a plain function of the offer book, the proposals heard and
the epoch number; `run` only reads the wall clock to know when an epoch has ended, computes
the matching in a worker thread (it can take tens of milliseconds on a big market) and
publishes. Epochs are wall-clock aligned (epoch = now_ms // EPOCH_MS), so every solver of a
market closes the same epoch at the same time, up to clock skew.

Which offers an epoch sees: those the book holds that were created before the epoch ended
(created_at <= its last millisecond) and are still open then; an offer created during the grace
period belongs to the next epoch, so solvers whose gossip arrived at slightly different times
still see the same set. Offers matched by an earlier proposal are held out (`MatchHolds`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

import trio

from lilypad_p2p import wire
from lilypad_p2p.blocking import run_blocking
from lilypad_p2p.clock import Clock
from lilypad_p2p.identity import Identity
from lilypad_p2p.logs import event
from lilypad_p2p.market import (
    DEFAULT_MATCH_HOLD_MS,
    DEFAULT_MATCH_POLICY,
    EPOCH_MS,
    HeldPair,
    MatchHolds,
    MatchPolicy,
    OfferBook,
    RecordsAt,
    epoch_end_ms,
    epoch_of,
    is_open,
    match,
    proposals_for,
    vet_proposal,
)
from lilypad_p2p.net import PublishError

log = logging.getLogger("lilypad_p2p.solver")

# After an epoch ends, wait this long for offers created just before its end to arrive by
# gossip (loopback and LAN deliver in a few ms; a 10-node mesh within ~100 ms).
EPOCH_GRACE_MS = 150
# Proposals for epochs further ahead of ours than this are ignored (a skewed or lying clock).
MAX_EPOCHS_AHEAD = 4
# Solvers that computed the same matching need not all gossip it (each copy goes to every
# node): per epoch the known solvers of the market are ranked by a hash of (address, epoch), the
# first publishes at once and the k-th waits k slots, skipping its copy if another solver's
# arrived first. A slot is longer than gossip takes to cross the network, even loaded; every
# solver still publishes when it hears nothing in time (a lost or slow copy). With random
# delays in [0, 300 ms) the 50-node baseline gossiped 3.2 proposals per job.
PUBLISH_SLOT_MS = 400
MAX_PUBLISH_STAGGER_MS = 1600


def publish_delay_ms(solver: str, epoch: int, solvers: Iterable[str] = (),
                     slot_ms: int = PUBLISH_SLOT_MS,
                     max_ms: int = MAX_PUBLISH_STAGGER_MS) -> int:
    """This solver's wait before publishing its proposals for `epoch`: its rank among
    `solvers` (the others it knows; itself included either way) in slots, capped at `max_ms`.
    The order changes every epoch, so no solver is always first (or always the one that
    waits)."""
    def rank_key(address: str) -> bytes:
        return hashlib.sha256(f"{address.lower()}/{epoch}".encode()).digest()

    me = solver.lower()
    ahead = {other.lower() for other in solvers if rank_key(other) < rank_key(me)} - {me}
    return min(len(ahead) * slot_ms, max_ms)


@dataclass(frozen=True, slots=True)
class _EpochInputs:
    market: str
    epoch: int
    jobs: list[wire.JobOffer]
    resources: list[wire.ResourceOffer]
    reserved: dict[str, tuple[wire.ResourceSpec, ...]]
    recent_matches: dict[str, int]
    records: RecordsAt

    def fingerprint(self) -> tuple[frozenset[object], ...]:
        # bytes cache their hash, so this costs a pass over the offers, not a re-encoding.
        # Records at a block never change, so the blocks known stand for them.
        return (
            frozenset(job.canonical_bytes for job in self.jobs),
            frozenset(offer.canonical_bytes for offer in self.resources),
            frozenset(self.reserved.items()),
            frozenset(self.recent_matches.items()),
            frozenset(self.records),
        )


@dataclass(frozen=True, slots=True)
class SolverStatistics:
    epochs: int
    proposals_published: int
    jobs_proposed: int
    proposals_heard: int
    proposals_ignored: int
    proposals_invalid: int
    publish_failures: int
    epochs_unchanged: int
    last_epoch_ms: float
    # Our proposals not published because another solver's identical matching came first.
    proposals_already_heard: int = 0


class Solver:
    """Matches `markets` every epoch and publishes signed MatchProposals (module docstring).

    Args:
        identity: signs the proposals.
        book: the node's offer book (read only).
        markets: the markets to solve.
        publish: gossips a signed envelope (normally `GossipNet.publish`).
        clock_ms: the wall clock epochs are aligned to (default: a `Clock`, on trio's clock).
        epoch_ms: epoch length; every solver of a market must use the same.
        hold_ms: how long matched offers sit out later epochs (see `MatchHolds`).
        policy: matching knobs; every solver of a market must use the same.
        stagger_ms: the publication slot (PUBLISH_SLOT_MS; 0: publish at once).
        solvers: the addresses of the other solvers this node knows (from NodeRecords), which
            rank the publication order.
        records: the providers' track records at the blocks jobs name (`RecordFeed.for_jobs`);
            None: none known, so jobs that name a records block wait for a solver that has them.
    """

    def __init__(
        self,
        identity: Identity,
        book: OfferBook,
        *,
        markets: Sequence[str],
        publish: Callable[[wire.SignedEnvelope], Awaitable[None]],
        clock_ms: Callable[[], int] | None = None,
        epoch_ms: int = EPOCH_MS,
        grace_ms: int = EPOCH_GRACE_MS,
        hold_ms: int = DEFAULT_MATCH_HOLD_MS,
        policy: MatchPolicy = DEFAULT_MATCH_POLICY,
        stagger_ms: int = PUBLISH_SLOT_MS,
        records: Callable[[Iterable[wire.JobOffer]], RecordsAt] | None = None,
        solvers: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        if not 0 <= grace_ms < epoch_ms:
            raise ValueError("grace_ms must be in [0, epoch_ms)")
        self._identity = identity
        self._book = book
        self._markets = tuple(markets)
        self._publish = publish
        self._clock_ms = clock_ms or Clock()
        self._epoch_ms = epoch_ms
        self._grace_ms = grace_ms
        self._policy = policy
        self._stagger_ms = stagger_ms
        self._records = records
        self._solvers = solvers
        self._already_heard = 0
        self._holds = MatchHolds(hold_ms, epoch_ms)
        self._epochs = 0
        self._published = 0
        self._jobs_proposed = 0
        self._heard = 0
        self._ignored = 0
        self._invalid = 0
        self._unchanged = 0
        # Per market: the inputs of the last epoch that matched nothing.
        self._fruitless: dict[str, object] = {}
        self._publish_failures = 0
        self._last_epoch_ms = 0.0

    # --- the pure part ---------------------------------------------------------------------

    def observe(self, envelope: wire.SignedEnvelope) -> bool:
        """Take note of a proposal (another solver's); True if it holds offers from now on.

        Ignored: other markets, epochs too far ahead of our clock, matchings already known,
        and proposals `vet_proposal` finds invalid (counted apart: a faulty or hostile solver).
        """
        proposal = envelope.body
        if not isinstance(proposal, wire.MatchProposal):
            raise TypeError(f"Solver.observe takes MatchProposals, not {type(proposal).__name__}")
        current = epoch_of(self._clock_ms(), self._epoch_ms)
        if proposal.market not in self._markets or proposal.epoch > current + MAX_EPOCHS_AHEAD:
            self._ignored += 1
            return False
        pairs = vet_proposal(proposal, self._offer_of, epoch_ms=self._epoch_ms,
                             policy=self._policy, records=self._records)
        if pairs is None:
            self._invalid += 1
            event(
                log,
                "proposal.invalid",
                logging.WARNING,
                solver=proposal.solver,
                matching=proposal.matching_id,
            )
            return False
        self._heard += 1
        return self._holds.record(proposal, pairs)

    def plan_epoch(self, market: str, epoch: int) -> list[wire.MatchProposal]:
        """The proposals for `market` at the end of `epoch`, from the book as it is now."""
        return self._propose(self._inputs(market, epoch))

    def _inputs(self, market: str, epoch: int) -> _EpochInputs:
        """A snapshot of what `epoch` matches (taken on the trio thread: the book moves):
        the offers open at the epoch's last millisecond, minus held jobs."""
        last_ms = epoch_end_ms(epoch, self._epoch_ms) - 1
        job_offers = self._book.offers(market, wire.JobOffer)
        held = self._holds.held(market, epoch, {envelope.body.cid for envelope in job_offers})
        jobs = []
        for envelope in job_offers:
            body = envelope.body
            if (
                isinstance(body, wire.JobOffer)
                and is_open(body, last_ms)
                and body.cid not in held.jobs
            ):
                jobs.append(body)
        resources = []
        for envelope in self._book.offers(market, wire.ResourceOffer):
            body = envelope.body
            if isinstance(body, wire.ResourceOffer) and is_open(body, last_ms):
                resources.append(body)
        records = self._records(jobs) if self._records is not None else {}
        return _EpochInputs(
            market, epoch, jobs, resources, dict(held.reserved), dict(held.recent_matches),
            records,
        )

    def _propose(self, inputs: _EpochInputs) -> list[wire.MatchProposal]:
        """Pure: the matching of `inputs` as proposals (run in a worker thread by `run`)."""
        matching = match(
            inputs.jobs,
            inputs.resources,
            epoch_end_ms(inputs.epoch, self._epoch_ms) - 1,
            epoch=inputs.epoch,
            policy=self._policy,
            reserved=inputs.reserved,
            recent_matches=inputs.recent_matches,
            records=inputs.records,
        )
        return proposals_for(
            matching, market=inputs.market, solver=self._identity.address, epoch_ms=self._epoch_ms
        )

    def _offer_of(self, offer_id: str) -> wire.JobOffer | wire.ResourceOffer | None:
        envelope = self._book.get(offer_id)
        if envelope is None or not isinstance(envelope.body, wire.JobOffer | wire.ResourceOffer):
            return None
        return envelope.body

    def statistics(self) -> SolverStatistics:
        return SolverStatistics(
            epochs=self._epochs,
            proposals_published=self._published,
            jobs_proposed=self._jobs_proposed,
            proposals_heard=self._heard,
            proposals_ignored=self._ignored,
            proposals_invalid=self._invalid,
            publish_failures=self._publish_failures,
            epochs_unchanged=self._unchanged,
            last_epoch_ms=self._last_epoch_ms,
            proposals_already_heard=self._already_heard,
        )

    # --- the service -----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Solve every epoch from the next one on, until cancelled."""
        task_status.started()
        epoch = epoch_of(self._clock_ms(), self._epoch_ms)
        while True:
            due_ms = epoch_end_ms(epoch, self._epoch_ms) + self._grace_ms
            delay_ms = due_ms - self._clock_ms()
            if delay_ms > 0:
                await trio.sleep(delay_ms / 1000)
            # A slow epoch (or a suspended process) skips to the latest epoch that has ended:
            # holds count in epochs, so skipped ones cost nothing but their proposals.
            epoch = max(epoch, epoch_of(self._clock_ms() - self._grace_ms, self._epoch_ms) - 1)
            await self._solve(epoch)
            epoch += 1

    async def _solve(self, epoch: int) -> None:
        started = trio.current_time()
        self._holds.forget_before(epoch)
        planned: list[wire.MatchProposal] = []
        for market in self._markets:
            inputs = self._inputs(market, epoch)
            if not inputs.jobs or not inputs.resources:
                continue
            # Same offers and reservations as an epoch that matched nothing: a later time can
            # only close offers or deadlines, never open a match, so skip the work.
            fingerprint = inputs.fingerprint()
            if self._fruitless.get(market) == fingerprint:
                self._unchanged += 1
                continue
            proposals = await run_blocking(self._propose, inputs)
            if proposals:
                self._fruitless.pop(market, None)
            else:
                self._fruitless[market] = fingerprint
            planned.extend(proposals)
        if planned:
            await trio.sleep(publish_delay_ms(self._identity.address, epoch, self._solvers(),
                                              self._stagger_ms) / 1000)
        for proposal in planned:
            if self._holds.knows(proposal):
                self._already_heard += 1  # same matching, another solver: its copy serves
                continue
            await self._publish_proposal(proposal)
        self._epochs += 1
        self._last_epoch_ms = (trio.current_time() - started) * 1000

    def _own_pairs(self, proposal: wire.MatchProposal) -> list[HeldPair]:
        pairs = []
        for job_id, resource_id in proposal.matches:
            job = self._offer_of(job_id)
            if isinstance(job, wire.JobOffer):
                pairs.append((job_id, resource_id, job.spec))
        return pairs

    async def _publish_proposal(self, proposal: wire.MatchProposal) -> None:
        published_at = max(self._clock_ms(), proposal.created_at)
        envelope = self._identity.sign_envelope(proposal, published_at)
        try:
            await self._publish(envelope)
        except PublishError as error:
            # Nobody heard it, so nothing holds these offers: the next epoch proposes again.
            self._publish_failures += 1
            event(log, "proposal.publish_failed", logging.WARNING, error=str(error))
            return
        self._holds.record(proposal, self._own_pairs(proposal))
        self._published += 1
        self._jobs_proposed += len(proposal.matches)
        event(
            log,
            "proposal.published",
            market=proposal.market,
            epoch=proposal.epoch,
            matching=proposal.matching_id,
            matches=len(proposal.matches),
        )
