"""Track records in matching: requirements, ties broken by records, the newcomer share, and
solvers that read the same records agreeing on the matching."""

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matching_cases import CHAIN_A, NOW, addr, check_valid, job, offer, spec

from lilypad_p2p.market import (
    PROVEN_COMPLETED,
    TrackRecord,
    is_newcomer_job,
    match,
    mismatch,
    proposals_for,
    standing,
)

BLOCK = 50_000
PROVEN, NEWCOMER, SLASHED = addr(200), addr(201), addr(202)
RECORDS = {
    (CHAIN_A, BLOCK): {
        PROVEN: TrackRecord(PROVEN, opened=5, settled=5),
        SLASHED: TrackRecord(SLASHED, opened=6, settled=5, missed_deadline=1,
                             last_slash_block=BLOCK - 10),
    }
}


def three_offers(price=5):
    return [offer(provider=p, nonce=n, price=price) for n, p in enumerate((PROVEN, NEWCOMER,
                                                                            SLASHED))]


def provider_of(matching, resources):
    by_id = {r.cid: r.provider for r in resources}
    return {job_id: by_id[resource_id] for job_id, resource_id in matching.matches}


def jobs_where(newcomer: bool, count: int, **kwargs):
    found = []
    nonce = 0
    while len(found) < count:
        candidate = job(nonce=nonce, records_block=BLOCK, **kwargs)
        if is_newcomer_job(candidate, candidate.cid) == newcomer:
            found.append(candidate)
        nonce += 1
    return found


def test_standing_of_records():
    assert standing(None, BLOCK) == standing(TrackRecord(NEWCOMER), BLOCK)
    proven = TrackRecord(PROVEN, opened=PROVEN_COMPLETED, settled=PROVEN_COMPLETED)
    assert standing(proven, BLOCK) > standing(None, BLOCK)
    slashed = RECORDS[(CHAIN_A, BLOCK)][SLASHED]
    assert standing(slashed, BLOCK) < standing(None, BLOCK)
    assert standing(slashed, BLOCK + 100_000) > standing(None, BLOCK)  # an old slash is forgiven


def test_a_requirement_admits_only_providers_that_meet_it():
    resources = three_offers()
    needy = job(records_block=BLOCK, min_completed=1, slash_free_blocks=100)
    matching = match([needy], resources, NOW, epoch=1, records=RECORDS)
    assert list(provider_of(matching, resources).values()) == [PROVEN]
    reasons = {r.provider: mismatch(needy, r, NOW, records=RECORDS) for r in resources}
    assert reasons[PROVEN] is None
    assert reasons[NEWCOMER] == "record: 0 completed deals, fewer than the 1 required"
    assert reasons[SLASHED] == "record: slashed 10 blocks ago (within 100)"
    # Only the proven provider qualifies; without it, the job waits rather than settle.
    matching = match([needy], resources[1:], NOW, epoch=1, records=RECORDS)
    assert matching.placed == 0


def test_a_solver_without_the_records_leaves_the_job_out():
    resources = three_offers()
    jobs = [job(nonce=1, records_block=BLOCK + 1), job(nonce=2)]
    matching = match(jobs, resources, NOW, epoch=1, records=RECORDS)
    assert [job_id for job_id, _ in matching.matches] == [jobs[1].cid]
    assert mismatch(jobs[0], resources[0], NOW, records=RECORDS) == (
        "records not known at the job's block")


def test_ties_go_to_the_better_record_and_newcomer_jobs_to_newcomers():
    resources = three_offers()
    for newcomer_job in (False, True):
        for candidate in jobs_where(newcomer_job, 3):
            chosen = provider_of(match([candidate], resources, NOW, epoch=1, records=RECORDS),
                                 resources)
            assert chosen[candidate.cid] == (NEWCOMER if newcomer_job else PROVEN)


def test_a_client_that_requires_deals_never_gets_the_newcomer_rule():
    resources = three_offers()
    for candidate in jobs_where(False, 20, min_completed=1):
        assert not is_newcomer_job(candidate, candidate.cid)
        chosen = provider_of(match([candidate], resources, NOW, epoch=1, records=RECORDS),
                             resources)
        assert chosen[candidate.cid] == PROVEN


def test_price_comes_before_record():
    resources = [offer(provider=PROVEN, price=6), offer(provider=SLASHED, price=5)]
    for candidate in jobs_where(False, 3):
        chosen = provider_of(match([candidate], resources, NOW, epoch=1, records=RECORDS),
                             resources)
        assert chosen[candidate.cid] == SLASHED


def test_jobs_that_ignore_records_spread_over_everyone():
    resources = three_offers()
    jobs = [job(nonce=n) for n in range(30)]
    chosen = Counter(provider_of(match(jobs, resources, NOW, epoch=1, records=RECORDS),
                                 resources).values())
    assert set(chosen) == {PROVEN, NEWCOMER, SLASHED}


def test_newcomers_get_a_share_of_record_ranked_work():
    """20 proven providers and 10 newcomers, equal prices, room for every job: the newcomer
    share of jobs reaches every newcomer, the rest stays with the proven."""
    proven = [addr(300 + n) for n in range(20)]
    newcomers = [addr(400 + n) for n in range(10)]
    records = {(CHAIN_A, BLOCK): {p: TrackRecord(p, opened=4, settled=4) for p in proven}}
    room = spec(milli_cpu=8000, ram_mb=8192, disk_mb=8000)
    resources = [offer(provider=p, nonce=n, capacity=room)
                 for n, p in enumerate([*proven, *newcomers])]
    jobs = [job(nonce=n, records_block=BLOCK) for n in range(200)]
    matching = match(jobs, resources, NOW, epoch=1, records=records)
    check_valid(matching, jobs, resources, NOW)
    assert matching.placed == 200
    counts = Counter(provider_of(matching, resources).values())
    share = sum(is_newcomer_job(j, j.cid) for j in jobs)
    assert 0 < share < 100
    assert all(counts[p] >= 1 for p in newcomers), counts
    assert sum(counts[p] for p in newcomers) == share


@st.composite
def markets_with_records(draw):
    providers = [addr(500 + n) for n in range(draw(st.integers(1, 6)))]
    blocks = [BLOCK, BLOCK + 7]
    records = {}
    for block in blocks:
        book = {}
        for p in providers:
            completed = draw(st.integers(0, 5))
            slashed = draw(st.booleans())
            book[p] = TrackRecord(p, opened=completed + slashed, settled=completed,
                                  ruled_wrong=int(slashed),
                                  last_slash_block=block - draw(st.integers(0, 9000))
                                  if slashed else None)
        records[(CHAIN_A, block)] = book
    resources = [
        offer(provider=p, nonce=n, price=draw(st.integers(1, 3)),
              capacity=spec(milli_cpu=1000 * draw(st.integers(1, 3)), ram_mb=4096))
        for n, p in enumerate(providers)
    ]
    jobs = []
    for n in range(draw(st.integers(1, 20))):
        block = draw(st.sampled_from([0, BLOCK, BLOCK + 7, BLOCK + 99]))
        asks = (draw(st.integers(0, 2)), draw(st.integers(0, 2000))) if block else (0, 0)
        jobs.append(job(nonce=n, max_price=3, records_block=block, min_completed=asks[0],
                        slash_free_blocks=asks[1]))
    return jobs, resources, records


@settings(max_examples=60, deadline=None)
@given(markets_with_records(), st.randoms(use_true_random=False), st.integers(0, 3))
def test_solvers_with_the_same_view_propose_the_same(market, rng, loaded):
    jobs, resources, records = market
    recent = {resources[n % len(resources)].cid: n for n in range(loaded)}
    first = match(jobs, resources, NOW, epoch=9, records=records, recent_matches=recent)
    shuffled_jobs, shuffled_resources = list(jobs), list(resources)
    rng.shuffle(shuffled_jobs)
    rng.shuffle(shuffled_resources)
    # The other solver's records arrive as other mapping objects, in another order.
    copied = {key: dict(reversed(list(book.items()))) for key, book in reversed(records.items())}
    second = match(shuffled_jobs, shuffled_resources, NOW, epoch=9, records=copied,
                   recent_matches=dict(recent))
    assert first == second
    ours = proposals_for(first, market="cpu", solver=addr(1))
    theirs = proposals_for(second, market="cpu", solver=addr(2))
    assert [p.matching_id for p in ours] == [p.matching_id for p in theirs]
    check_valid(first, jobs, resources, NOW)
    by_id = {o.cid: o for o in [*jobs, *resources]}
    for job_id, resource_id in first.matches:
        assert mismatch(by_id[job_id], by_id[resource_id], NOW, records=records) is None


def test_a_requirement_needs_a_records_block():
    with pytest.raises(ValueError, match="records_block"):
        job(min_completed=1)


def test_a_proposal_that_breaks_a_requirement_is_invalid_where_the_records_are_known():
    from lilypad_p2p.market import Matching, epoch_of, proposals_for, vet_proposal

    newcomer = offer(provider=NEWCOMER)
    needy = job(records_block=BLOCK, min_completed=1)
    forged = Matching(epoch=epoch_of(NOW), matches=((needy.cid, newcomer.cid),), surplus_wei=5,
                      proven_optimal=False)
    [proposal] = proposals_for(forged, market="cpu", solver=addr(66))
    by_id = {o.cid: o for o in (newcomer, needy)}
    assert vet_proposal(proposal, by_id.get, records=lambda jobs: RECORDS) is None
    # Without the records of that block a solver cannot judge it (nor match the job): held.
    held = vet_proposal(proposal, by_id.get, records=lambda jobs: {})
    assert held == ((needy.cid, newcomer.cid, needy.spec),)
