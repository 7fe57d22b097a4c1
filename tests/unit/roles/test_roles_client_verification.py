"""The client's checks on a provider's answers, against a scripted provider on a real
(embedded) chain: a result whose outputs do not match the signed hash is never accepted, and a
good one is accepted and handed over (settled by the scripted provider)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from scripted_provider import ScriptedProvider, funded_parties, provider_listing

from lilypad_p2p.chain import SettlementItem
from lilypad_p2p.identity import Identity
from lilypad_p2p.localnet import chain_test_accounts
from lilypad_p2p.market import OfferBook
from lilypad_p2p.net import wall_clock_ms
from lilypad_p2p.roles import (
    ClientRole,
    DealChains,
    JobSubmission,
)
from lilypad_p2p.store import DealStore

pytestmark = pytest.mark.chain
WAIT_S = 30.0


async def _market(tmp_path: Path, *, lie: bool):
    mediator = chain_test_accounts(2)[1].address
    client_id, provider_id = Identity.generate(), Identity.generate()
    chain_id, chains = await funded_parties([client_id, provider_id])
    clock = wall_clock_ms
    listing, record = provider_listing(provider_id, chain_id, (mediator,), clock())
    book = OfferBook()
    book.add(listing, clock())
    provider = ScriptedProvider(provider_id, chains[provider_id.address], lie=lie)

    async def publish(body):
        return None

    client = ClientRole(
        client_id, store=DealStore.open(tmp_path / "db"),
        chains=DealChains([chains[client_id.address]]),
        book=book, publish=publish, request=provider.request, exchange=provider.exchange,
        node_record=lambda address: record if address == provider_id.address else None,
        mediators=(mediator,), results_dir=tmp_path / "results", clock_ms=clock)
    return client, provider, provider_id, chains


async def _final(client: ClientRole, key: str, phases: set[str]) -> str:
    with trio.fail_after(WAIT_S):
        while True:
            deal = await client.control_handlers()["deal"]({"key": key})
            if deal["phase"] in phases:
                return deal["phase"]
            await trio.sleep(0.05)


async def test_outputs_not_matching_the_signed_hash_are_rejected(tmp_path):
    client, provider, provider_id, _ = await _market(tmp_path, lie=True)
    async with trio.open_nursery() as nursery:
        await nursery.start(client.run)
        key = await client.submit(JobSubmission(module="hash", params={"text": "x"},
                                                target=provider_id.address))
        assert await _final(client, key, {"rejected", "accepted", "settled"}) == "rejected"
        assert provider.accepted == []
        nursery.cancel_scope.cancel()


async def test_matching_outputs_are_accepted_and_the_acceptance_settles(tmp_path):
    client, provider, provider_id, chains = await _market(tmp_path, lie=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(client.run)
        key = await client.submit(JobSubmission(module="hash", params={"text": "x"},
                                                target=provider_id.address))
        with trio.fail_after(WAIT_S):
            while not provider.accepted:
                await trio.sleep(0.05)
        notice = provider.accepted[0]
        deal = client._store.get(key).detail.deal
        await chains[provider_id.address].settle_batch(
            [SettlementItem(deal, notice.result_hash, notice.job_creator_signature)])
        assert await _final(client, key, {"rejected", "settled"}) == "settled"
        nursery.cancel_scope.cancel()
