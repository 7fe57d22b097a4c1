"""The provider countersigns deals that match its offer while it has room, and no more."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from lilypad_p2p import wire
from lilypad_p2p.blocking import run_blocking
from lilypad_p2p.chain import SettlementClient, deploy_settlement
from lilypad_p2p.clock import Clock, wall_clock_ms
from lilypad_p2p.identity import Identity
from lilypad_p2p.localnet import chain_test_accounts
from lilypad_p2p.market import OfferBook
from lilypad_p2p.roles import (
    DEFAULT_COLLATERAL_WEI,
    DealChain,
    DealChains,
    ProviderRole,
    build_deal,
    deal_to_wire,
    resource_offer,
)
from lilypad_p2p.roles._resource_offer import Capacity
from lilypad_p2p.store import DealStore
from lilypad_p2p.testing import embedded_test_chain
from lilypad_p2p.testing.offers import make_job_offer

pytestmark = pytest.mark.chain
DEPOSIT_WEI = 10**18
HASH_SPEC = wire.ResourceSpec(milli_cpu=500, ram_mb=64, disk_mb=16)


async def _deal_chain(chain, contract, deployer, identity: Identity,
                      deposit_wei: int = DEPOSIT_WEI) -> DealChain:
    await run_blocking(chain.transact, deployer, identity.address, b"", 2 * DEPOSIT_WEI)
    sync = SettlementClient(chain, contract, identity.eth_account())
    await run_blocking(sync.deposit, deposit_wei)
    return DealChain(sync, identity)


def _job(client: Identity, mediator: str, now: int, chain_id: int) -> wire.JobOffer:
    return make_job_offer(job_creator=client.address, spec=HASH_SPEC,
                          trusted_mediators=(mediator,), chain_id=chain_id,
                          deadline=now + 300_000, created_at=now, expires_at=now + 60_000,
                          nonce=secrets.randbits(63))


async def test_refuses_beyond_free_capacity_and_answers_repeats_alike(tmp_path: Path, autojump):
    chain = embedded_test_chain()
    deployer, mediator_account = chain_test_accounts(2)
    contract = await run_blocking(deploy_settlement, chain, deployer)
    mediator = mediator_account.address
    client, provider = Identity.generate(), Identity.generate()
    await _deal_chain(chain, contract, deployer, client)
    provider_chain = await _deal_chain(chain, contract, deployer, provider)
    clock = Clock(wall_clock_ms())  # from now on, trio's mock clock alone
    now = clock()
    # Room for two 500-mCPU jobs at once.
    offer = resource_offer(provider=provider.address, market="cpu",
                           capacity=Capacity(1000, 4096, 10_000), modules=("hash",),
                           now_ms=now, chain_ids=(chain.chain_id,),
                           trusted_mediators=(mediator,))
    book = OfferBook()
    book.add(provider.sign_envelope(offer, now), now)

    async def no_executor():
        raise AssertionError("no job runs in this test")

    role = ProviderRole(provider, store=DealStore.open(tmp_path / "db"),
                        chains=DealChains([provider_chain]),
                        book=book, executor_factory=no_executor, clock_ms=clock)

    def proposal(job: wire.JobOffer, *, signer: Identity = client,
                 chain_id: int = chain.chain_id) -> wire.DealProposal:
        deal = build_deal(job, offer, salt=secrets.token_bytes(32))
        signature = DealChain(SettlementClient(chain, contract, signer.eth_account()),
                              signer).sign_deal(deal)
        return wire.DealProposal(chain_id=chain_id,
                                 job_offer=client.sign_envelope(job, now).encode(),
                                 resource_offer_cid=offer.cid, deal=deal_to_wire(deal),
                                 job_creator_signature=signature)

    def job() -> wire.JobOffer:
        return _job(client, mediator, now, chain.chain_id)

    # A deal names a chain the provider serves, and the one its job offer pays on.
    unknown = await role.on_deal_proposal(str(client.peer_id), proposal(
        _job(client, mediator, now, 999), chain_id=999))
    assert isinstance(unknown, wire.DealRefused)
    assert "not one of this node's chains" in unknown.reason
    mixed = await role.on_deal_proposal(str(client.peer_id), proposal(job(), chain_id=999))
    assert mixed == wire.DealRefused(reason="the deal's chain is not its job offer's")
    # Only the job creator may propose its deal, and only with its own signature.
    stranger = Identity.generate()
    refused = await role.on_deal_proposal(str(stranger.peer_id), proposal(job()))
    assert refused == wire.DealRefused(reason="only the job creator may propose its deal")
    forged = await role.on_deal_proposal(
        str(client.peer_id), proposal(job(), signer=stranger))
    assert isinstance(forged, wire.DealRefused)
    assert forged.reason.startswith("invalid proposal")

    answers = []
    first = proposal(job())
    for request in (first, proposal(job()),
                    proposal(job())):
        answers.append(await role.on_deal_proposal(str(client.peer_id), request))
    assert [type(a) for a in answers] == [wire.DealAccepted, wire.DealAccepted,
                                         wire.DealRefused]
    assert answers[2].reason == "no free capacity"
    # A repeated proposal (the client restarted) gets the same countersignature.
    assert await role.on_deal_proposal(str(client.peer_id), first) == answers[0]


async def test_refuses_every_deal_while_it_cannot_run_jobs(tmp_path: Path, autojump):
    chain = embedded_test_chain()
    deployer, mediator_account = chain_test_accounts(2)
    contract = await run_blocking(deploy_settlement, chain, deployer)
    mediator = mediator_account.address
    client, provider = Identity.generate(), Identity.generate()
    await _deal_chain(chain, contract, deployer, client)
    provider_chain = await _deal_chain(chain, contract, deployer, provider)
    clock = Clock(wall_clock_ms())  # from now on, trio's mock clock alone
    now = clock()
    offer = resource_offer(provider=provider.address, market="cpu",
                           capacity=Capacity(1000, 4096, 10_000), modules=("hash",),
                           now_ms=now, chain_ids=(chain.chain_id,),
                           trusted_mediators=(mediator,))
    book = OfferBook()
    book.add(provider.sign_envelope(offer, now), now)
    why: list[str | None] = ["docker unreachable (no engine)"]

    async def no_executor():
        raise AssertionError("no job runs in this test")

    store = DealStore.open(tmp_path / "db")
    role = ProviderRole(provider, store=store, chains=DealChains([provider_chain]), book=book,
                        executor_factory=no_executor, clock_ms=clock,
                        availability=lambda: why[0])
    # A client that still holds the offer (the Cancel has not reached it) proposes a deal.
    job = _job(client, mediator, now, chain.chain_id)
    deal = build_deal(job, offer, salt=secrets.token_bytes(32))
    signature = DealChain(SettlementClient(chain, contract, client.eth_account()),
                          client).sign_deal(deal)
    request = wire.DealProposal(chain_id=chain.chain_id,
                                job_offer=client.sign_envelope(job, now).encode(),
                                resource_offer_cid=offer.cid, deal=deal_to_wire(deal),
                                job_creator_signature=signature)
    refused = await role.on_deal_proposal(str(client.peer_id), request)
    assert refused == wire.DealRefused(
        reason="provider cannot run jobs now: docker unreachable (no engine)")
    assert store.deals() == []
    why[0] = None  # the engine is back
    assert isinstance(await role.on_deal_proposal(str(client.peer_id), request),
                      wire.DealAccepted)


async def test_promises_no_more_collateral_than_its_deposit_holds(tmp_path: Path, autojump):
    """A deal's collateral is locked only when the client opens it, maybe seconds after the
    countersignature: a provider whose deposit covers one collateral but not two countersigns
    one of two deals it has room for, so that every deal it signed can open."""
    chain = embedded_test_chain()
    deployer, mediator_account = chain_test_accounts(2)
    contract = await run_blocking(deploy_settlement, chain, deployer)
    client, provider = Identity.generate(), Identity.generate()
    client_chain = await _deal_chain(chain, contract, deployer, client)
    provider_chain = await _deal_chain(chain, contract, deployer, provider,
                                       deposit_wei=DEFAULT_COLLATERAL_WEI * 3 // 2)
    clock = Clock(wall_clock_ms())
    now = clock()
    offer = resource_offer(provider=provider.address, market="cpu",
                           capacity=Capacity(1000, 4096, 10_000), modules=("hash",),
                           now_ms=now, chain_ids=(chain.chain_id,),
                           trusted_mediators=(mediator_account.address,))
    book = OfferBook()
    book.add(provider.sign_envelope(offer, now), now)

    async def no_executor():
        raise AssertionError("no job runs in this test")

    store = DealStore.open(tmp_path / "db")
    role = ProviderRole(provider, store=store, chains=DealChains([provider_chain]), book=book,
                        executor_factory=no_executor, clock_ms=clock)
    for _ in range(2):  # room for both: 500 mCPU each
        job = _job(client, mediator_account.address, now, chain.chain_id)
        deal = build_deal(job, offer, salt=secrets.token_bytes(32))
        signature = client_chain.sign_deal(deal)
        answer = await role.on_deal_proposal(str(client.peer_id), wire.DealProposal(
            chain_id=chain.chain_id, job_offer=client.sign_envelope(job, now).encode(),
            resource_offer_cid=offer.cid, deal=deal_to_wire(deal),
            job_creator_signature=signature))
        if not isinstance(answer, wire.DealAccepted):
            assert "deposit cannot cover the collateral" in answer.reason

    signed = store.provider_deals()
    for stored in signed:  # each opens on chain, as the provider opens it once given inputs
        await run_blocking(provider_chain.sync.open_deal, stored.detail.deal,
                           stored.detail.job_creator_signature, stored.detail.provider_signature)
    assert len(signed) == 1
