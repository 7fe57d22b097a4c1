"""A client that requires a record names it in its job offer and never signs a deal with a
provider that fails it, whatever a solver proposes (a real embedded chain; scripted providers;
the attacker is a solver proposing the newcomer)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing
from scripted_provider import ScriptedProvider

from lilypad_p2p import wire
from lilypad_p2p.chain import RecordFeed
from lilypad_p2p.clock import Clock, wall_clock_ms
from lilypad_p2p.identity import Identity
from lilypad_p2p.localnet import chain_test_accounts
from lilypad_p2p.market import OfferBook, SettlementEvent
from lilypad_p2p.net import DEAL_STREAM
from lilypad_p2p.roles import ClientRole, DealChains, JobSubmission
from lilypad_p2p.roles._client_records import ClientRecords, RecordPolicy
from lilypad_p2p.store import DealStore
from lilypad_p2p.testing import MemoryNetwork, funded_deal_chains, provider_listing

pytestmark = pytest.mark.chain
# Virtual seconds: the deal needs no timer, so a stuck one fails after the client's idle polls.
LIMIT_S = 60
HEAD = 40


async def test_a_proposed_newcomer_is_refused_and_the_proven_provider_gets_the_deal(
    tmp_path: Path, autojump
) -> None:
    mediator = chain_test_accounts(2)[1].address
    client_id, newcomer_id, proven_id = (Identity.generate() for _ in range(3))
    chain_id, chains = await funded_deal_chains([client_id, newcomer_id, proven_id])
    clock = Clock(wall_clock_ms())  # from now on, trio's mock clock alone
    book, offers, node_records = OfferBook(), {}, {}
    for identity in (newcomer_id, proven_id):
        listing, node_records[identity.address] = provider_listing(
            identity, chain_id, (mediator,), clock())
        book.add(listing, clock())
        offers[identity.address] = listing.body.cid
    feed = RecordFeed()
    deal_id = b"\x01" * 32
    # Early blocks: a job names the chain's head when posted, past the funding transactions.
    feed.add(chain_id, [SettlementEvent("DealOpened", deal_id, 1, provider=proven_id.address),
                        SettlementEvent("DealSettled", deal_id, 2)], HEAD)
    proven = ScriptedProvider(proven_id, chains[proven_id.address], lie=False)
    network = MemoryNetwork()
    proven.join(network)
    asked_newcomer: list[wire.Message] = []

    async def newcomer_asked(peer_id: str, proposal: wire.DealProposal) -> wire.DealMessage:
        asked_newcomer.append(proposal)
        return wire.DealRefused(reason="the test's newcomer is never to be asked")

    network.transport(newcomer_id.peer_id).serve(DEAL_STREAM, newcomer_asked)

    published: list[wire.Message] = []

    async def publish(body: wire.Message) -> None:
        published.append(body)

    client = ClientRole(
        client_id, store=DealStore.open(tmp_path / "db"),
        chains=DealChains([chains[client_id.address]]),
        book=book, publish=publish, transport=network.transport(client_id.peer_id),
        node_record=node_records.get,
        mediators=(mediator,), results_dir=tmp_path / "results", clock_ms=clock,
        records=ClientRecords(feed, RecordPolicy(min_completed_deals=1)))
    solver = Identity.generate()

    def propose(job_offer: wire.JobOffer, provider: Identity, nonce: int) -> None:
        proposal = wire.MatchProposal(
            market="cpu", epoch=nonce, solver=solver.address,
            matches=((job_offer.cid, offers[provider.address]),),
            created_at=clock(), expires_at=clock() + 60_000, nonce=nonce)
        client.observe_proposal(solver.sign_envelope(proposal, clock()))

    with trio.fail_after(LIMIT_S):
        async with trio.open_nursery() as nursery:
            await nursery.start(client.run)
            key = await client.submit(JobSubmission(module="hash", params={"text": "x"}))
            job_offer = next(body for body in published if isinstance(body, wire.JobOffer))
            # The chain's head when posted (our synthetic replay is ahead of it).
            head = await chains[client_id.address].head_block()
            assert (job_offer.records_block, job_offer.min_completed_deals) == (head, 1)
            propose(job_offer, newcomer_id, 1)
            await trio.testing.wait_all_tasks_blocked()  # the client has looked at it
            stored = client._store.get(key)
            assert stored is not None and stored.record.phase.value == "offered"
            propose(job_offer, proven_id, 2)
            await proven.first_acceptance.wait()
            # A job may still admit newcomers: then it asks nothing of records, and names no block.
            await client.submit(JobSubmission(module="hash", params={"text": "y"},
                                              min_completed_deals=0))
            nursery.cancel_scope.cancel()
    stored = client._store.get(key)
    assert stored is not None
    assert stored.detail.deal.provider == proven_id.address
    assert asked_newcomer == []
    open_to_all = [body for body in published if isinstance(body, wire.JobOffer)][-1]
    assert (open_to_all.records_block, open_to_all.min_completed_deals) == (0, 0)
