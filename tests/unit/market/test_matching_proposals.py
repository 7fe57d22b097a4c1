"""Proposal identity across solvers, the holds between epochs, and the solver's epoch plan."""

import random
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st
from matching_cases import NOW, job, offer, spec

from lilypad_p2p.identity import Identity
from lilypad_p2p.market import (
    DEFAULT_MATCH_HOLD_MS,
    EPOCH_MS,
    PROPOSAL_LIFETIME_MS,
    MatchHolds,
    Matching,
    OfferBook,
    epoch_end_ms,
    epoch_of,
    match,
    proposals_for,
    vet_proposal,
)
from lilypad_p2p.roles import Solver
from lilypad_p2p.testing._markets import random_market
from lilypad_p2p.wire import (
    MAX_MATCHES,
    MatchProposal,
    content_id,
    decode,
    matching_content_id,
    message_from_wire,
    open_envelope,
)

EPOCH = epoch_of(NOW)
SOLVER_KEYS = (Identity.generate(), Identity.generate())


def proposals_of(identity, jobs, resources, epoch=EPOCH):
    matching = match(jobs, resources, epoch_end_ms(epoch) - 1, epoch=epoch)
    return proposals_for(matching, market="cpu", solver=identity.address)


@given(st.integers(0, 2**32 - 1), st.integers(1, 40), st.integers(1, 15), st.randoms())
def test_two_solvers_in_any_order_agree_on_the_matching_id(seed, n_jobs, n_resources, rng):
    jobs, resources = random_market(seed, n_jobs, n_resources, NOW)
    first, second = SOLVER_KEYS
    mine = proposals_of(first, jobs, resources)
    jobs, resources = list(jobs), list(resources)
    rng.shuffle(jobs)
    rng.shuffle(resources)
    theirs = proposals_of(second, jobs, resources)
    mine_again = proposals_of(first, jobs, resources)
    assert [p.canonical_bytes for p in mine] == [p.canonical_bytes for p in mine_again]
    assert [p.cid for p in mine] == [p.cid for p in mine_again]
    assert [p.matching_id for p in mine] == [p.matching_id for p in theirs]
    for ours, other in zip(mine, theirs, strict=True):
        assert ours.solver != other.solver
        assert ours.matches == other.matches and ours.created_at == other.created_at


def test_matching_id_is_derived_from_market_epoch_and_matches_only():
    pairs = ((content_id(b"job"), content_id(b"resource")),)
    fields = {"market": "cpu", "epoch": 9, "matches": pairs, "created_at": 5000}
    one = MatchProposal(**fields, solver=SOLVER_KEYS[0].address, expires_at=6000, nonce=1)
    two = MatchProposal(**fields, solver=SOLVER_KEYS[1].address, expires_at=7000, nonce=2)
    assert one.cid != two.cid
    assert one.matching_id == two.matching_id == matching_content_id("cpu", 9, pairs)
    assert matching_content_id("gpu", 9, pairs) != one.matching_id
    assert matching_content_id("cpu", 10, pairs) != one.matching_id
    other_pairs = ((content_id(b"job"), content_id(b"other")),)
    assert matching_content_id("cpu", 9, other_pairs) != one.matching_id
    # It survives the wire: a signed, encoded, opened proposal has the same matching ID.
    envelope = SOLVER_KEYS[0].sign_envelope(one, 5000)
    opened = open_envelope(envelope.encode(), now_ms=5000)
    assert opened.body.matching_id == one.matching_id
    assert message_from_wire(decode(one.canonical_bytes)).matching_id == one.matching_id


def test_proposal_fields_are_functions_of_the_epoch():
    j, r = job(), offer()
    (proposal,) = proposals_of(SOLVER_KEYS[0], [j], [r])
    assert proposal.matches == ((j.cid, r.cid),)
    assert proposal.created_at == epoch_end_ms(EPOCH)
    assert proposal.expires_at == proposal.created_at + PROPOSAL_LIFETIME_MS
    assert proposal.nonce == 0
    assert proposals_of(SOLVER_KEYS[0], [], [r]) == []


def test_a_big_matching_goes_out_in_chunks():
    pairs = tuple(
        sorted((content_id(b"j%d" % i), content_id(b"r")) for i in range(MAX_MATCHES + 10))
    )
    matching = Matching(epoch=3, matches=pairs, surplus_wei=0, proven_optimal=False)
    chunks = proposals_for(matching, market="cpu", solver=SOLVER_KEYS[0].address)
    assert [len(p.matches) for p in chunks] == [MAX_MATCHES, 10]
    assert sum((p.matches for p in chunks), ()) == pairs
    assert len({p.matching_id for p in chunks}) == 2


# --- holds ---------------------------------------------------------------------------------


def proposal_for(epoch, pairs, solver=0):
    return MatchProposal(
        market="cpu",
        epoch=epoch,
        solver=SOLVER_KEYS[solver].address,
        matches=tuple(sorted(pairs)),
        created_at=epoch_end_ms(epoch),
        expires_at=epoch_end_ms(epoch) + PROPOSAL_LIFETIME_MS,
        nonce=0,
    )


def test_holds_last_hold_ms_and_never_touch_their_own_epoch():
    j, r = job(), offer()
    holds = MatchHolds()
    assert holds.record(proposal_for(10, [(j.cid, r.cid)]), [(j.cid, r.cid, j.spec)])
    # The same matching from another solver is the same matching.
    assert not holds.record(proposal_for(10, [(j.cid, r.cid)], solver=1), [(j.cid, r.cid, j.spec)])
    assert len(holds) == 1
    assert holds.held("cpu", 10).jobs == frozenset()
    assert holds.held("cpu", 11).jobs == {j.cid}
    assert holds.held("cpu", 11).reserved == {r.cid: (j.spec,)}
    assert holds.held("gpu", 11).jobs == frozenset()
    last_held = 10 + DEFAULT_MATCH_HOLD_MS // EPOCH_MS - 1
    assert holds.held("cpu", last_held).jobs == {j.cid}
    assert holds.held("cpu", last_held + 1).jobs == frozenset()
    holds.forget_before(last_held)
    assert len(holds) == 1
    holds.forget_before(last_held + 1)
    assert len(holds) == 0


def test_a_job_no_longer_live_stops_holding_capacity():
    kept, gone, r = job(nonce=1), job(nonce=2), offer()
    holds = MatchHolds()
    pairs = [(kept.cid, r.cid), (gone.cid, r.cid)]
    holds.record(proposal_for(10, pairs), [(j.cid, r.cid, j.spec) for j in (kept, gone)])
    assert holds.held("cpu", 11).reserved == {r.cid: (kept.spec, gone.spec)}
    # The owner of `gone` cancelled it once its deal was agreed: only `kept` still reserves.
    still = holds.held("cpu", 11, live_jobs={kept.cid})
    assert still.jobs == {kept.cid}
    assert still.reserved == {r.cid: (kept.spec,)}
    assert holds.held("cpu", 11, live_jobs=set()).reserved == {}


def test_vetting_a_heard_proposal():
    big = offer(capacity=spec(milli_cpu=2000, ram_mb=2048, disk_mb=2000))
    first, second, third = (job(nonce=i) for i in range(3))
    known = {o.cid: o for o in (big, first, second, third)}
    epoch = epoch_of(NOW)

    def vet(pairs):
        return vet_proposal(proposal_for(epoch, pairs), known.get)

    assert vet([(first.cid, big.cid), (second.cid, big.cid)]) == tuple(
        sorted([(first.cid, big.cid, first.spec), (second.cid, big.cid, second.spec)])
    )
    # Over-committing an offer, or an incompatible pair, makes the whole proposal invalid.
    assert vet([(first.cid, big.cid), (second.cid, big.cid), (third.cid, big.cid)]) is None
    dear = offer(nonce=9, price=100)
    known[dear.cid] = dear
    assert vet([(first.cid, dear.cid)]) is None
    # A made-up offer ID holds nothing: a hostile solver cannot keep real jobs out that way.
    made_up = content_id(b"no such offer")
    assert vet([(first.cid, made_up)]) == ()
    assert vet([(made_up, big.cid)]) == ()


def test_holds_do_not_depend_on_the_order_proposals_arrive():
    resource = offer(capacity=spec(milli_cpu=8000, ram_mb=8192, disk_mb=8000))
    jobs = [job(nonce=i, need=spec(milli_cpu=1000 + i)) for i in range(6)]
    # Two different matchings of overlapping jobs, from two solvers, in two epochs.
    proposals = [
        proposal_for(EPOCH, [(jobs[0].cid, resource.cid), (jobs[1].cid, resource.cid)]),
        proposal_for(EPOCH, [(jobs[1].cid, resource.cid), (jobs[2].cid, resource.cid)], solver=1),
        proposal_for(EPOCH + 1, [(jobs[3].cid, resource.cid)]),
    ]
    known = {o.cid: o for o in (resource, *jobs)}
    views = []
    for order in ([0, 1, 2], [2, 1, 0], [1, 2, 0]):
        holds = MatchHolds()
        for index in order:
            holds.record(proposals[index], vet_proposal(proposals[index], known.get))
        views.append(holds.held("cpu", EPOCH + 2))
    assert views[0] == views[1] == views[2]
    assert views[0].jobs == {jobs[i].cid for i in range(4)}
    assert sorted(s.milli_cpu for s in views[0].reserved[resource.cid]) == [1000, 1001, 1002, 1003]


# --- the solver's plan for an epoch (pure part of the role) -------------------------------


@dataclass(frozen=True)
class UnsignedEnvelope:
    """The book trusts its caller to have opened envelopes; generated owners have no keys."""

    body: object
    published_at: int


def book_of(offers, now_ms):
    book = OfferBook()
    for body in offers:
        book.add(UnsignedEnvelope(body, now_ms), now_ms)
    return book


def solver_over(offers, identity, now_ms):
    book = book_of(offers, now_ms)

    async def publish(envelope):
        raise AssertionError("plan_epoch publishes nothing")

    return Solver(identity, book, markets=["cpu"], publish=publish, clock_ms=lambda: now_ms)


def test_solvers_plan_the_same_proposals_and_hold_what_they_matched():
    jobs, resources = random_market(11, 30, 8, NOW)
    offers = [*jobs, *resources]
    now_ms = epoch_end_ms(EPOCH) + 100
    shuffled = list(offers)
    random.Random(1).shuffle(shuffled)
    first = solver_over(offers, SOLVER_KEYS[0], now_ms)
    second = solver_over(shuffled, SOLVER_KEYS[1], now_ms)
    planned = first.plan_epoch("cpu", EPOCH)
    assert planned, "the generated market should match something"
    assert [p.matching_id for p in planned] == [
        p.matching_id for p in second.plan_epoch("cpu", EPOCH)
    ]
    # Each hears the other's proposal: the next epoch holds those jobs out.
    for proposal in planned:
        envelope = SOLVER_KEYS[0].sign_envelope(proposal, now_ms)
        assert second.observe(envelope)
        assert not second.observe(envelope)
    held = {job_id for p in planned for job_id, _ in p.matches}
    later = second.plan_epoch("cpu", EPOCH + 1)
    assert held.isdisjoint(job_id for p in later for job_id, _ in p.matches)
    # Once the hold is over, a job that is still open is matched again.
    after_hold = second.plan_epoch("cpu", EPOCH + DEFAULT_MATCH_HOLD_MS // EPOCH_MS)
    assert held & {job_id for p in after_hold for job_id, _ in p.matches}


def test_offers_created_after_the_epoch_wait_for_the_next():
    end = epoch_end_ms(EPOCH)
    early, late = job(nonce=1, created_at=end - 1), job(nonce=2, created_at=end)
    solver = solver_over([early, late, offer(created_at=end - 1000)], SOLVER_KEYS[0], end + 100)
    (proposal,) = solver.plan_epoch("cpu", EPOCH)
    assert [j for j, _ in proposal.matches] == [early.cid]


def test_observe_ignores_other_markets_and_far_future_epochs():
    solver = solver_over([], SOLVER_KEYS[0], NOW)
    pairs = [(job().cid, offer().cid)]
    far = proposal_for(EPOCH + 100, pairs)
    assert not solver.observe(SOLVER_KEYS[0].sign_envelope(far, far.created_at))
    assert solver.statistics().proposals_ignored == 1
    # A pair breaking a constraint of offers we hold: a faulty solver, nothing is held.
    cheap_job, dear = job(max_price=1), offer(price=5)
    solver = solver_over([cheap_job, dear], SOLVER_KEYS[0], NOW)
    bad = proposal_for(EPOCH, [(cheap_job.cid, dear.cid)], solver=1)
    assert not solver.observe(SOLVER_KEYS[1].sign_envelope(bad, bad.created_at))
    assert solver.statistics().proposals_invalid == 1
    assert solver.plan_epoch("cpu", EPOCH + 1) == []  # and nothing to match here either
    with pytest.raises(TypeError):
        solver.observe(SOLVER_KEYS[0].sign_envelope(offer(provider=SOLVER_KEYS[0].address), NOW))
