"""Records in the roles: the feed's answers per block, the client's policy and offer fields, and
a solver that matches a record-naming job only once it has the records of its block."""

import dataclasses

import pytest
from test_solver_service import START_MS, market, market_book

from lilypad_p2p.chain import RecordFeed
from lilypad_p2p.errors import LilypadError
from lilypad_p2p.identity import Identity
from lilypad_p2p.market import SettlementEvent, epoch_of
from lilypad_p2p.roles import Solver
from lilypad_p2p.roles._client_records import ClientRecords, RecordPolicy
from lilypad_p2p.wire import JobOffer, ResourceOffer

CHAIN = 31337
PROVIDER = Identity.generate().address


def deal_events(provider: str, deal: int, opened: int, settled: int | None) -> list:
    deal_id = deal.to_bytes(32, "big")
    events = [SettlementEvent("DealOpened", deal_id, opened, provider=provider)]
    if settled is not None:
        events.append(SettlementEvent("DealSettled", deal_id, settled))
    return events


def test_the_feed_answers_at_any_block_it_has_read():
    feed = RecordFeed()
    assert feed.records_at(CHAIN, 1) is None and feed.head(CHAIN) is None
    feed.add(CHAIN, [*deal_events(PROVIDER, 1, 10, 12), *deal_events(PROVIDER, 2, 15, 20)], 25)
    assert feed.records_at(CHAIN, 9) == {}
    assert feed.records_at(CHAIN, 12)[PROVIDER].completed == 1
    assert feed.records_at(CHAIN, 25)[PROVIDER].completed == 2
    assert feed.records_at(CHAIN, 26) is None
    feed.add(CHAIN, [], 30)
    assert feed.records_at(CHAIN, 26)[PROVIDER].completed == 2
    assert feed.records_at(CHAIN + 1, 1) is None


def test_the_client_policy_and_the_fields_its_offers_carry():
    records = ClientRecords(RecordFeed(), RecordPolicy(min_completed_deals=2))
    # The chain's head, whether or not our own replay has reached it yet.
    assert records.offer_fields(records.policy, 40) == {
        "records_block": 40, "min_completed_deals": 2, "slash_free_blocks": 0}
    assert records.offer_fields(records.policy, 0)["records_block"] == 1
    assert records.offer_fields(RecordPolicy(), 40) == {}  # asks nothing, names no block
    per_job = records.policy.overridden(0, 100)
    assert (per_job.min_completed_deals, per_job.slash_free_blocks) == (0, 100)
    assert records.policy.overridden(None, None) == records.policy
    assert RecordPolicy(prefer_records=True).counts_records
    with pytest.raises(LilypadError):
        RecordPolicy(min_completed_deals=-1)


def test_a_solver_matches_a_job_naming_records_once_it_has_them():
    offers = market(PROVIDER, Identity.generate().address)
    resource = offers[0]
    assert isinstance(resource, ResourceOffer)
    jobs = [dataclasses.replace(job, records_block=50, min_completed_deals=1)
            for job in offers[1:] if isinstance(job, JobOffer)]
    feed = RecordFeed()
    solver = Solver(Identity.generate(), market_book([resource, *jobs]), markets=["cpu"],
                    publish=None, clock_ms=lambda: START_MS, records=feed.for_jobs)  # type: ignore[arg-type]
    epoch = epoch_of(START_MS)
    assert solver.plan_epoch("cpu", epoch) == []  # no records read yet: the jobs wait
    feed.add(CHAIN, [], 50)
    assert solver.plan_epoch("cpu", epoch) == []  # read, and the provider has no deal
    feed = RecordFeed()
    feed.add(CHAIN, deal_events(PROVIDER, 1, 10, 11), 50)
    solver = Solver(Identity.generate(), market_book([resource, *jobs]), markets=["cpu"],
                    publish=None, clock_ms=lambda: START_MS, records=feed.for_jobs)  # type: ignore[arg-type]
    proposals = solver.plan_epoch("cpu", epoch)
    assert sum(len(p.matches) for p in proposals) == len(jobs)
