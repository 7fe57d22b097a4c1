"""The client's dispute driver against a scripted provider and scripted mediators on a real
(embedded) chain: outputs that fail verification are disputed and resolved automatically, and
`dispute` sends an accepted, unsettled deal to mediation. Trio's clock is an autojumping
`MockClock`; nothing here waits on a timer."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from scripted_provider import ScriptedProvider, client_market

from lilypad_p2p.chain import DealStatus, Outcome
from lilypad_p2p.identity import Identity
from lilypad_p2p.roles import ClientRole, JobSubmission
from lilypad_p2p.testing import WatchedStore

pytestmark = pytest.mark.chain
# Virtual seconds: the deal needs no timer, so a stuck one fails after the client's idle polls.
LIMIT_S = 60


async def _market(tmp_path: Path, *, lie: bool, outcome: Outcome, acks: bool = True,
                  ack_after: trio.Event | None = None):
    market = await client_market(
        tmp_path, outcome, lambda identity, chain: ScriptedProvider(
            identity, chain, lie=lie, acks=acks, ack_after=ack_after))
    return market.client, market.provider, market.provider_id, market.mediators, market.chain


async def _hash_job(client: ClientRole, nursery: trio.Nursery, provider_id: Identity) -> str:
    """Start `client` in `nursery` and post a hash job to the provider; its deal key."""
    await nursery.start(client.run)
    return await client.submit(JobSubmission(module="hash", params={"text": "x"},
                                             target=provider_id.address))


async def _final(client: ClientRole, key: str, phases: set[str]) -> dict:
    store = client._store
    assert isinstance(store, WatchedStore)
    await store.until(lambda: store.phase(key) in phases)
    return await client.control_handlers()["deal"]({"key": key})


async def test_outputs_missing_the_signed_hash_are_disputed_and_resolved(tmp_path, autojump):
    client, provider, provider_id, mediators, chain = await _market(
        tmp_path, lie=True, outcome=Outcome.PROVIDER_WRONG)
    with trio.fail_after(LIMIT_S):
        async with trio.open_nursery() as nursery:
            key = await _hash_job(client, nursery, provider_id)
            deal = await _final(client, key, {"resolved", "rejected", "settled", "timed_out"})
            assert deal["phase"] == "resolved" and deal["outcome"] == "PROVIDER_WRONG"
            assert provider.accepted == []
            assert all(m.asked == 1 for m in mediators.values())
            stored = client._store.get(key).detail.deal
            assert await chain.status(stored) is DealStatus.RESOLVED
            nursery.cancel_scope.cancel()


async def test_the_user_disputes_an_accepted_deal_the_provider_does_not_hold_yet(
    tmp_path, autojump
):
    client, provider, provider_id, _, _ = await _market(
        tmp_path, lie=False, outcome=Outcome.PROVIDER_CORRECT, acks=False)
    with trio.fail_after(LIMIT_S):
        async with trio.open_nursery() as nursery:
            key = await _hash_job(client, nursery, provider_id)
            await provider.first_acceptance.wait()  # asked, but it does not take it
            shown = await client.control_handlers()["dispute"]({"key": key})
            assert shown["phase"] == "disputed"
            deal = await _final(client, key, {"resolved", "settled", "timed_out"})
            assert deal["phase"] == "resolved" and deal["outcome"] == "PROVIDER_CORRECT"
            with pytest.raises(Exception, match="resolved"):
                await client.control_handlers()["dispute"]({"key": key})
            nursery.cancel_scope.cancel()


async def test_a_deal_whose_acceptance_the_provider_holds_cannot_be_disputed(tmp_path, autojump):
    # The contract settles on a delivered Acceptance even after a dispute (it is final), so a
    # dispute would only say mediators are at work while the deal settles.
    client, provider, provider_id, mediators, _ = await _market(
        tmp_path, lie=False, outcome=Outcome.PROVIDER_CORRECT)
    with trio.fail_after(LIMIT_S):
        async with trio.open_nursery() as nursery:
            key = await _hash_job(client, nursery, provider_id)
            await provider.first_acceptance.wait()
            await client._store.until(lambda: client._store.get(key).detail.acceptance_delivered)
            with pytest.raises(Exception, match="already holds this deal's signed Acceptance"):
                await client.control_handlers()["dispute"]({"key": key})
            assert client._store.phase(key) == "accepted"
            assert all(mediator.asked == 0 for mediator in mediators.values())
            nursery.cancel_scope.cancel()


async def test_a_dispute_while_the_acceptance_travels_is_refused_and_undoes_nothing(
    tmp_path, autojump
):
    # The provider holds the Acceptance before its acknowledgement is back: a dispute then
    # would be overruled by it, and its acknowledgement must not put the deal back either.
    answer = trio.Event()
    client, provider, provider_id, mediators, _ = await _market(
        tmp_path, lie=False, outcome=Outcome.PROVIDER_CORRECT, ack_after=answer)
    with trio.fail_after(LIMIT_S):
        async with trio.open_nursery() as nursery:
            key = await _hash_job(client, nursery, provider_id)
            await provider.first_acceptance.wait()
            with pytest.raises(Exception, match="on its way to the provider"):
                await client.control_handlers()["dispute"]({"key": key})
            answer.set()
            await client._store.until(lambda: client._store.get(key).detail.acceptance_delivered)
            assert client._store.phase(key) == "accepted"
            assert all(mediator.asked == 0 for mediator in mediators.values())
            nursery.cancel_scope.cancel()


async def test_a_dispute_that_lands_while_delivery_reads_the_chain_stops_the_acceptance(
    tmp_path, autojump, monkeypatch
):
    client, provider, provider_id, _, chain = await _market(
        tmp_path, lie=False, outcome=Outcome.PROVIDER_CORRECT, acks=False)
    reading, go_on = trio.Event(), trio.Event()
    read_status = chain.status
    gate = []

    async def status(deal):
        if gate:  # the delivery's next look at the chain waits while the user disputes
            gate.clear()
            reading.set()
            await go_on.wait()
        return await read_status(deal)

    monkeypatch.setattr(chain, "status", status)
    with trio.fail_after(LIMIT_S):
        async with trio.open_nursery() as nursery:
            key = await _hash_job(client, nursery, provider_id)
            await provider.first_acceptance.wait()  # refused: the client will try again
            gate.append(True)
            await reading.wait()
            shown = await client.control_handlers()["dispute"]({"key": key})
            assert shown["phase"] == "disputed"
            go_on.set()
            deal = await _final(client, key, {"resolved", "settled", "timed_out"})
            assert deal["phase"] == "resolved" and deal["outcome"] == "PROVIDER_CORRECT"
            assert len(provider.accepted) == 1  # nothing was sent after the dispute
            nursery.cancel_scope.cancel()
