"""The client's checks on a provider's answers, against a scripted provider on a real
(embedded) chain: a result whose outputs do not match the signed hash is never accepted, and a
good one is accepted and handed over (settled by the scripted provider)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from scripted_provider import ScriptedProvider

from lilypad_p2p import wire
from lilypad_p2p.chain import SettlementClient, SettlementItem, deploy_settlement
from lilypad_p2p.identity import Identity
from lilypad_p2p.market import OfferBook
from lilypad_p2p.net import wall_clock_ms
from lilypad_p2p.roles import (
    ClientRole,
    DealChain,
    DealChains,
    JobSubmission,
    deal_from_wire,
    resource_offer,
)
from lilypad_p2p.roles._provider import Capacity
from lilypad_p2p.store import DealStore
from lilypad_p2p.testing import embedded_test_chain
from lilypad_p2p.testing._chain import chain_test_accounts

pytestmark = pytest.mark.chain
DEPOSIT_WEI = 10**18
WAIT_S = 30.0


async def _market(tmp_path: Path, *, lie: bool):
    chain = embedded_test_chain()
    deployer = chain_test_accounts(1)[0]
    contract = await trio.to_thread.run_sync(deploy_settlement, chain, deployer)
    mediator = chain_test_accounts(2)[1].address
    client_id, provider_id = Identity.generate(), Identity.generate()
    chains = {}
    for identity in (client_id, provider_id):
        await trio.to_thread.run_sync(lambda a=identity.address: chain.transact(
            deployer, a, b"", 2 * DEPOSIT_WEI))
        sync = SettlementClient(chain, contract, identity.eth_account())
        await trio.to_thread.run_sync(sync.deposit, DEPOSIT_WEI)
        chains[identity.address] = DealChain(sync, identity)
    clock = wall_clock_ms
    offer = resource_offer(provider=provider_id.address, market="cpu",
                           capacity=Capacity(2000, 4096, 10_000), modules=("hash",),
                           now_ms=clock(), chain_ids=(chain.chain_id,),
                           trusted_mediators=(mediator,))
    book = OfferBook()
    book.add(provider_id.sign_envelope(offer, clock()), clock())
    record = wire.NodeRecord(
        address=provider_id.address, peer_id=str(provider_id.peer_id), roles=("provider",),
        sealing_public_key=provider_id.sealing_public_key, markets=("cpu",),
        listen_addrs=(), created_at=clock(), expires_at=clock() + 60_000, nonce=1)
    provider = ScriptedProvider(provider_id, chains[provider_id.address], lie=lie)

    async def publish(body):
        return None

    client = ClientRole(
        client_id, store=DealStore.open(tmp_path / "db"),
        chains=DealChains([chains[client_id.address]]),
        book=book, publish=publish, request=provider.request,
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
        deal = deal_from_wire(client._store.get(key).detail["deal"])
        await chains[provider_id.address].settle_batch(
            [SettlementItem(deal, notice.result_hash, notice.job_creator_signature)])
        assert await _final(client, key, {"rejected", "settled"}) == "settled"
        nursery.cancel_scope.cancel()
