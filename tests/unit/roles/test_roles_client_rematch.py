"""A provider that never answers the deal proposal costs the job only that match: the job goes
back to OFFERED, the silent offer sits out, and the client takes another offer it holds
(against a real embedded chain; the providers are scripted on an in-memory network; trio's
clock is an autojumping `MockClock`, so the agreement timeout passes in no real time)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from scripted_provider import ScriptedProvider

from lilypad_p2p import wire
from lilypad_p2p.clock import Clock, wall_clock_ms
from lilypad_p2p.identity import Identity
from lilypad_p2p.localnet import chain_test_accounts
from lilypad_p2p.market import OfferBook, Timeouts
from lilypad_p2p.net import DEAL_STREAM
from lilypad_p2p.roles import (
    ClientRole,
    DealChains,
    JobSubmission,
)
from lilypad_p2p.store import DealStore
from lilypad_p2p.testing import MemoryNetwork, funded_deal_chains, provider_listing

pytestmark = pytest.mark.chain
AGREEMENT_MS = 1_500
# Virtual seconds: the silent provider's timeout, then a deal with the other, with room to spare.
LIMIT_S = 60


async def test_an_unanswered_proposal_sends_the_job_to_another_offer(
    tmp_path: Path, autojump
) -> None:
    mediator = chain_test_accounts(2)[1].address
    client_id, silent_id, answering_id = (Identity.generate() for _ in range(3))
    chain_id, chains = await funded_deal_chains([client_id, silent_id, answering_id])
    clock = Clock(wall_clock_ms())  # from now on, trio's mock clock alone
    book, offers, records = OfferBook(), {}, {}
    for identity in (silent_id, answering_id):
        listing, records[identity.address] = provider_listing(
            identity, chain_id, (mediator,), clock())
        book.add(listing, clock())
        offers[identity.address] = listing.body.cid
    answering = ScriptedProvider(answering_id, chains[answering_id.address], lie=False)
    network = MemoryNetwork()
    answering.join(network)
    silent_proposals: list[wire.DealProposal] = []
    silent_asked = trio.Event()

    async def never_answer(peer_id: str, proposal: wire.DealProposal) -> wire.DealMessage:
        silent_proposals.append(proposal)
        silent_asked.set()
        await trio.sleep_forever()  # overloaded or gone: never answers
        raise AssertionError("unreachable")

    network.transport(silent_id.peer_id).serve(DEAL_STREAM, never_answer)

    published: list[wire.Message] = []

    async def publish(body: wire.Message) -> None:
        published.append(body)

    client = ClientRole(
        client_id, store=DealStore.open(tmp_path / "db"),
        chains=DealChains([chains[client_id.address]]),
        book=book, publish=publish, transport=network.transport(client_id.peer_id),
        node_record=records.get,
        mediators=(mediator,), results_dir=tmp_path / "results", clock_ms=clock,
        timeouts=Timeouts(agreement_ms=AGREEMENT_MS))
    solver = Identity.generate()
    with trio.fail_after(LIMIT_S):
        async with trio.open_nursery() as nursery:
            await nursery.start(client.run)
            key = await client.submit(JobSubmission(module="hash", params={"text": "x"}))
            job_offer = next(body for body in published if isinstance(body, wire.JobOffer))
            proposal = wire.MatchProposal(
                market="cpu", epoch=1, solver=solver.address,
                matches=((job_offer.cid, offers[silent_id.address]),),
                created_at=clock(), expires_at=clock() + 60_000, nonce=1)
            client.observe_proposal(solver.sign_envelope(proposal, clock()))
            await silent_asked.wait()
            await answering.first_acceptance.wait()
            nursery.cancel_scope.cancel()
    stored = client._store.get(key)
    assert stored is not None
    assert len(silent_proposals) == 1  # tried once, then left alone
    assert stored.detail.deal.provider == answering_id.address
    assert stored.detail.refusal.startswith("the provider did not answer the proposal")
    transitions = client._store.transitions(key)
    assert [t.to_phase.value for t in transitions][:5] == [
        "offered", "matched", "offered", "matched", "agreed"]
    # Given up on only once the agreement timeout had passed.
    assert transitions[2].at_ms - transitions[1].at_ms >= AGREEMENT_MS
