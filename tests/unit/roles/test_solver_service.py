"""The solver's trio loop on an autojumping mock clock: one matching per epoch end, published
once. Each test runs the solver for EPOCHS_WATCHED epochs of virtual time."""

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
import trio

from lilypad_p2p.clock import Clock
from lilypad_p2p.identity import Identity
from lilypad_p2p.market import EPOCH_MS, OfferBook, epoch_end_ms, epoch_of
from lilypad_p2p.net import PublishError
from lilypad_p2p.roles import EPOCH_GRACE_MS, Solver
from lilypad_p2p.roles._solver import MAX_PUBLISH_STAGGER_MS, PUBLISH_SLOT_MS, publish_delay_ms
from lilypad_p2p.testing.offers import make_job_offer, make_resource_offer
from lilypad_p2p.wire import JobOffer, MatchProposal, ResourceOffer, ResourceSpec

START_MS = 1_700_000_000_000 + 123  # mid-epoch
MEDIATORS = (Identity.generate().address,)
EPOCHS_WATCHED = 6
WATCHED_S = EPOCHS_WATCHED * EPOCH_MS / 1000


@dataclass(frozen=True)
class UnsignedEnvelope:
    body: object
    published_at: int


def market(provider: str, creator: str) -> list[JobOffer | ResourceOffer]:
    resource = make_resource_offer(
        provider=provider, spec=ResourceSpec(milli_cpu=4000, ram_mb=4096, disk_mb=4000),
        price_per_job_wei=1, trusted_mediators=MEDIATORS, created_at=START_MS - 5000,
        expires_at=START_MS + 600_000)
    jobs = [
        make_job_offer(job_creator=creator, max_price_wei=10, trusted_mediators=MEDIATORS,
                       deadline=START_MS + 600_000, created_at=START_MS - 1000,
                       expires_at=START_MS + 600_000, nonce=i)
        for i in range(3)
    ]
    return [resource, *jobs]


@pytest.fixture
def clock() -> Clock:
    """The node's clock on the mock clock, starting mid-epoch."""
    return Clock(START_MS)


def market_book(offers: Sequence[JobOffer | ResourceOffer] | None = None) -> OfferBook:
    """An offer book holding `offers` (default: a fresh `market`)."""
    book = OfferBook()
    if offers is None:
        offers = market(Identity.generate().address, Identity.generate().address)
    for body in offers:
        book.add(UnsignedEnvelope(body, START_MS), START_MS)
    return book


async def test_a_failed_publication_is_retried_next_epoch_then_held(autojump, clock):
    book = market_book()
    solver_key = Identity.generate()
    published: list[tuple[int, MatchProposal]] = []
    attempts = 0

    async def publish(envelope) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise PublishError("no peers yet")  # the first try fails: counted, not retried
        published.append((clock(), envelope.body))
        assert envelope.published_at >= envelope.body.created_at

    solver = Solver(solver_key, book, markets=["cpu"], publish=publish, clock_ms=clock)
    with trio.move_on_after(WATCHED_S):
        await solver.run()

    statistics = solver.statistics()
    assert statistics.epochs >= EPOCHS_WATCHED - 1
    # The first epoch's proposal failed to publish: nobody heard it, so nothing held its jobs
    # and the next epoch proposed them again; after that, they are held.
    assert statistics.publish_failures == 1
    first_epoch = epoch_of(START_MS)
    assert [(proposal.epoch, len(proposal.matches)) for _, proposal in published] == [
        (first_epoch + 1, 3)
    ]
    assert solver.plan_epoch("cpu", first_epoch + 2) == []
    # Once the hold is over, the still-open jobs are proposed again at that epoch's end.
    again = solver.plan_epoch("cpu", first_epoch + 1 + 60)
    assert len(again) == 1 and len(again[0].matches) == 3
    assert again[0].created_at == epoch_end_ms(first_epoch + 61)


async def test_proposals_go_out_after_epoch_end_plus_grace(autojump, clock):
    book = market_book()
    published: list[tuple[int, MatchProposal]] = []

    async def publish(envelope) -> None:
        published.append((clock(), envelope.body))

    solver = Solver(Identity.generate(), book, markets=["cpu"], publish=publish, clock_ms=clock)
    with trio.move_on_after(WATCHED_S):
        await solver.run()

    assert len(published) == 1  # held afterwards
    sent_at, proposal = published[0]
    assert proposal.epoch == epoch_of(START_MS)
    assert sent_at >= epoch_end_ms(proposal.epoch) + EPOCH_GRACE_MS
    assert sent_at < epoch_end_ms(proposal.epoch + 1)
    assert len(proposal.matches) == 3


async def test_fruitless_epochs_are_skipped_until_the_inputs_change(autojump, clock):
    resource, *jobs = market(Identity.generate().address, Identity.generate().address)
    assert isinstance(resource, ResourceOffer)
    too_cheap = dataclasses.replace(jobs[0], max_price_wei=0)
    # Created two epochs ahead: not open (so not an input) until then.
    opens_at = epoch_end_ms(epoch_of(START_MS) + 2) + 10
    later = dataclasses.replace(jobs[1], created_at=opens_at)
    book = market_book((resource, too_cheap, later))
    published: list[MatchProposal] = []

    async def publish(envelope) -> None:
        published.append(envelope.body)

    solver = Solver(Identity.generate(), book, markets=["cpu"], publish=publish, clock_ms=clock)
    with trio.move_on_after(WATCHED_S):
        await solver.run()

    assert solver.statistics().epochs_unchanged >= 1
    assert [(p.epoch, p.matches) for p in published] == [
        (epoch_of(opens_at), ((later.cid, resource.cid),))
    ]


async def test_a_solver_skips_a_matching_another_solver_already_published(autojump, clock):
    book = market_book()
    published: list[MatchProposal] = []

    async def publish(envelope) -> None:
        published.append(envelope.body)

    quiet = Solver(Identity.generate(), book, markets=["cpu"], publish=publish, clock_ms=clock)
    other = Solver(Identity.generate(), book, markets=["cpu"], publish=publish, clock_ms=clock)
    first_epoch = epoch_of(START_MS)
    # The other solver's copy of this epoch's matching arrives before ours is due.
    [theirs] = other.plan_epoch("cpu", first_epoch)
    assert quiet.observe(UnsignedEnvelope(theirs, START_MS))
    with trio.move_on_after(WATCHED_S):
        await quiet.run()

    assert published == []  # the same matching: nothing to add; later epochs: held
    statistics = quiet.statistics()
    assert statistics.proposals_already_heard == 1
    assert statistics.proposals_published == 0


def test_publish_delays_rank_the_known_solvers_anew_each_epoch():
    solvers = [Identity.generate().address for _ in range(5)]
    for epoch in range(100):
        delays = sorted(publish_delay_ms(s, epoch, solvers) for s in solvers)
        # One solver publishes at once, each other one slot after the one before it.
        assert delays == [rank * PUBLISH_SLOT_MS for rank in range(5)]
    firsts = {next(s for s in solvers if publish_delay_ms(s, e, solvers) == 0)
              for e in range(100)}
    assert firsts == set(solvers)  # no solver is always first
    # Its own address in the list or not, and in any case: the same rank.
    me, others = solvers[0], solvers[1:]
    assert publish_delay_ms(me, 7, others) == publish_delay_ms(me.lower(), 7, solvers)
    assert publish_delay_ms(me, 7, ()) == 0  # alone: at once
    assert publish_delay_ms(me, 7, solvers, slot_ms=0) == 0
    many = [Identity.generate().address for _ in range(50)]
    assert max(publish_delay_ms(s, 7, many) for s in many) == MAX_PUBLISH_STAGGER_MS
