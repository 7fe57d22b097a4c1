"""What a provider sees of the market: recent matches, going prices, and why its offer lost."""

from hypothesis import given, settings
from hypothesis import strategies as st
from matching_cases import CHAIN_B, MEDIATOR_B, NOW, addr, job, offer, spec

from lilypad_p2p.market import TrackRecord, epoch_of
from lilypad_p2p.market._market_watch import (
    CAPACITY,
    CHAIN,
    MATCHED,
    MEDIATORS,
    MODULE,
    OUTBID,
    PRICE,
    RECORD,
    RESOURCES,
    TIE_LOST,
    UNMATCHED,
    MarketWatch,
    price_summary,
    reason_counts,
    why_not_matched,
)
from lilypad_p2p.wire import MatchProposal

OURS, RIVAL = addr(700), addr(701)
EPOCH = epoch_of(NOW) - 1


def proposal(pairs, epoch=EPOCH):
    end = (epoch + 1) * 500
    return MatchProposal(market="cpu", epoch=epoch, solver=addr(9),
                         matches=tuple(sorted(pairs)), created_at=end, expires_at=end + 30_000,
                         nonce=0)


def watch_of(offers, pairs, epoch=EPOCH):
    by_id = {o.cid: o for o in offers}
    watch = MarketWatch()
    watch.observe(proposal(pairs, epoch), by_id.get)
    return watch


def test_the_watch_keeps_recent_matches_of_offers_it_knows():
    ours = offer(provider=OURS, price=5)
    jobs = [job(nonce=n) for n in range(3)]
    watch = MarketWatch()
    by_id = {o.cid: o for o in [ours, *jobs]}
    made_up = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
    assert watch.observe(proposal([(jobs[0].cid, ours.cid), (made_up, ours.cid)]), by_id.get) == 1
    assert watch.observe(proposal([(jobs[0].cid, ours.cid)]), by_id.get) == 0  # seen
    assert watch.observe(proposal([(jobs[1].cid, ours.cid)], EPOCH + 1), by_id.get) == 1
    recent = watch.recent("cpu", NOW)
    assert [m.job.cid for m in recent] == [jobs[0].cid, jobs[1].cid]
    assert recent[0].provider == OURS and recent[0].price_wei == 5
    assert watch.recent("gpu", NOW) == []
    assert watch.recent("cpu", NOW + 60_000) == []  # forgotten after the window


def test_price_summary_uses_nearest_rank_percentiles():
    assert price_summary([]).count == 0 and price_summary([]).p50 is None
    summary = price_summary([5, 1, 9, 3, 7, 2, 8, 4, 6, 10])
    assert (summary.count, summary.last, summary.p10, summary.p50, summary.p90) == (
        10, 10, 1, 5, 9)
    assert price_summary([42]).p90 == 42


def test_each_reason_an_offer_loses_a_job():
    ours = offer(provider=OURS, price=5, capacity=spec(milli_cpu=2000, ram_mb=2048, disk_mb=2000))
    rival_cheap = offer(provider=RIVAL, nonce=1, price=3)
    rival_same = offer(provider=RIVAL, nonce=2, price=5)
    won, cheaper, tie, waiting, squeezed = (job(nonce=n) for n in range(5))
    too_cheap = job(nonce=10, max_price=4)
    too_big = job(nonce=11, need=spec(milli_cpu=4000))
    other_module = job(nonce=12, module="python")
    other_mediators = job(nonce=13, mediators=(MEDIATOR_B,))
    other_chain = job(nonce=14, chain_id=CHAIN_B)
    needs_record = job(nonce=15, records_block=100, min_completed=1)
    pairs = [(won.cid, ours.cid), (cheaper.cid, rival_cheap.cid), (tie.cid, rival_same.cid)]
    offers = [ours, rival_cheap, rival_same, won, cheaper, tie]
    matches = {m.job.cid: m for m in watch_of(offers, pairs).recent("cpu", NOW)}
    jobs = [won, cheaper, tie, waiting, too_cheap, too_big, other_module, other_mediators,
            other_chain, needs_record]
    records = {(needs_record.chain_id, 100): {OURS: TrackRecord(OURS)}}
    reasons = why_not_matched(ours, ours.cid, jobs, matches, NOW, records=records)
    assert {job_id: category for job_id, (category, _) in reasons.items()} == {
        won.cid: MATCHED, cheaper.cid: OUTBID, tie.cid: TIE_LOST, waiting.cid: UNMATCHED,
        too_cheap.cid: PRICE, too_big.cid: RESOURCES, other_module.cid: MODULE,
        other_mediators.cid: MEDIATORS, other_chain.cid: CHAIN, needs_record.cid: RECORD,
    }
    assert "asked 3 wei, we ask 5" in reasons[cheaper.cid][1]
    # With one more job promised to our offer, its room is gone for the next.
    more = watch_of([ours, won, squeezed], [(won.cid, ours.cid), (squeezed.cid, ours.cid)])
    matches = {m.job.cid: m for m in more.recent("cpu", NOW)}
    assert why_not_matched(ours, ours.cid, [waiting], matches, NOW)[waiting.cid][0] == CAPACITY
    assert reason_counts(reasons) == {
        CHAIN: 1, MATCHED: 1, MEDIATORS: 1, MODULE: 1, OUTBID: 1, PRICE: 1, RECORD: 1,
        RESOURCES: 1, TIE_LOST: 1, UNMATCHED: 1}


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 25), st.integers(1, 8))
def test_the_reasons_agree_with_the_matching(seed, n_jobs, n_resources):
    """For every offer of a random market, the reasons its jobs went elsewhere are those the
    matching had: its own jobs are `matched`, a pair `mismatch` refuses names that constraint,
    and a compatible job was outbid, tied, squeezed out or left unmatched."""
    from lilypad_p2p.market import is_open, match, mismatch
    from lilypad_p2p.market._market_watch import HeardMatch
    from lilypad_p2p.testing._markets import random_market

    jobs, resources = random_market(seed, n_jobs, n_resources, NOW)
    jobs = [j for j in jobs if is_open(j, NOW)]
    resources = [r for r in resources if is_open(r, NOW)]
    matching = match(jobs, resources, NOW, epoch=1)
    by_id = {o.cid: o for o in [*jobs, *resources]}
    matches = {job_id: HeardMatch(by_id[job_id], offer_id, by_id[offer_id].provider,
                                  by_id[offer_id].price_per_job_wei, NOW + 1)
               for job_id, offer_id in matching.matches}
    compatible_outcomes = {OUTBID, TIE_LOST, CAPACITY, UNMATCHED}
    for resource in resources:
        reasons = why_not_matched(resource, resource.cid, jobs, matches, NOW)
        assert set(reasons) == {j.cid for j in jobs}
        for candidate in jobs:
            category, _ = reasons[candidate.cid]
            match_of = matches.get(candidate.cid)
            if match_of is not None and match_of.resource_id == resource.cid:
                assert category == MATCHED
            elif mismatch(candidate, resource, NOW) is not None:
                assert category not in compatible_outcomes | {MATCHED}
            elif match_of is not None and match_of.price_wei < resource.price_per_job_wei:
                assert category == OUTBID
            elif match_of is None:
                assert category in {CAPACITY, UNMATCHED}
            else:
                assert category in {CAPACITY, TIE_LOST}
