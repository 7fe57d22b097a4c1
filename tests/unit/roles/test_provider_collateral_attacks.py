"""A job creator cannot take an honest provider's collateral by opening a deal whose inputs it
withholds, built as the attacker would (its own job offer and deal signature, the real provider
role's answer, then `openDeal` and `claimTimeout` on the deployed contract, its time following
trio's autojumping clock). Two attacks worked while the provider handed its deal signature to
the job creator, who opened the deal: open at once and never send the inputs, or open after
the provider had ended the deal as unopened; either way `claimTimeout` at the result deadline
paid the job creator the provider's collateral (1.000 -> 0.998 ETH). Now the provider keeps its
signature and opens the deal itself once it holds the inputs: the attacker has nothing to open
with, its own signature in the provider's place is refused by the contract, and the provider
ends the deal at its agreement timeout with nothing locked. A job creator whose deposit cannot
pay the deal is refused before one byte of its inputs is asked for, and inputs other than its
job offer committed to are never run."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
import trio

from lilypad_p2p import wire
from lilypad_p2p.blocking import run_blocking
from lilypad_p2p.chain import ContractRevert, Deal, DealStatus, SignatureRejected
from lilypad_p2p.clock import Clock, wall_clock_ms
from lilypad_p2p.exec import ExecError
from lilypad_p2p.identity import Identity
from lilypad_p2p.market import AGREEMENT_TIMEOUT_MS, OfferBook
from lilypad_p2p.roles import (
    DealChain,
    DealChains,
    ProviderRole,
    build_deal,
    deal_to_wire,
    resource_offer,
)
from lilypad_p2p.roles._resource_offer import Capacity
from lilypad_p2p.testing import WatchedStore, chain_follows_clock, funded_deal_chains
from lilypad_p2p.testing._chain import chain_test_accounts
from lilypad_p2p.testing._mediation import ChunksGate
from lilypad_p2p.testing.offers import make_job_offer

pytestmark = pytest.mark.chain
HASH_SPEC = wire.ResourceSpec(milli_cpu=500, ram_mb=64, disk_mb=16)
DEADLINE_S = 300
LIMIT_S = 4 * 3600  # virtual seconds


@dataclass
class _Attack:
    """A real provider role with its offer, and an attacker's proposal for one of its deals."""

    role: ProviderRole
    store: WatchedStore
    provider_chain: DealChain
    clock: Clock
    attacker: Identity
    deal: Deal
    attacker_signature: bytes
    proposal: wire.DealProposal


async def _attack(tmp_path: Path, *, attacker_deposits: bool) -> _Attack:
    mediator = chain_test_accounts(2)[1].address
    attacker, provider = Identity.generate(), Identity.generate()
    chain_id, chains = await funded_deal_chains(
        [attacker, provider] if attacker_deposits else [provider])
    provider_chain = chains[provider.address]
    clock = Clock(wall_clock_ms())
    now = clock()
    offer = resource_offer(provider=provider.address, market="cpu",
                           capacity=Capacity(1000, 4096, 10_000), modules=("hash",),
                           now_ms=now, chain_ids=(chain_id,), trusted_mediators=(mediator,))
    book = OfferBook()
    book.add(provider.sign_envelope(offer, now), now)

    async def no_docker():
        raise ExecError("no job runs in this test")

    store = WatchedStore.open(tmp_path / "db")
    role = ProviderRole(provider, store=store, chains=DealChains([provider_chain]), book=book,
                        executor_factory=no_docker, clock_ms=clock)
    job = make_job_offer(job_creator=attacker.address, spec=HASH_SPEC,
                         trusted_mediators=(mediator,), chain_id=chain_id,
                         deadline=now + DEADLINE_S * 1000, created_at=now,
                         expires_at=now + 60_000, nonce=secrets.randbits(63))
    deal = build_deal(job, offer, salt=secrets.token_bytes(32))
    signature = provider_chain.sync.with_account(attacker.eth_account()).sign(deal)
    proposal = wire.DealProposal(
        chain_id=chain_id, job_offer=attacker.sign_envelope(job, now).encode(),
        resource_offer_cid=offer.cid, deal=deal_to_wire(deal), job_creator_signature=signature)
    return _Attack(role, store, provider_chain, clock, attacker, deal, signature, proposal)


@pytest.mark.parametrize("late", [False, True], ids=["inputs-withheld", "opened-late"])
async def test_a_job_creator_cannot_take_the_collateral_of_a_provider_it_gives_no_inputs(
    tmp_path: Path, autojump, late: bool
) -> None:
    attack = await _attack(tmp_path, attacker_deposits=True)
    store, deal, signature = attack.store, attack.deal, attack.attacker_signature
    attacker_sync = attack.provider_chain.sync.with_account(attack.attacker.eth_account())
    before = await attack.provider_chain.client.balance()

    with trio.fail_after(LIMIT_S):
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(chain_follows_clock, attacker_sync.chain, attack.clock))
            await nursery.start(attack.role.run)
            answer = await attack.role.on_deal_proposal(str(attack.attacker.peer_id),
                                                        attack.proposal)
            assert answer.to_wire() == {"type": "deal_accepted", "v": 1}  # no signature
            if late:  # the provider ends the deal it sees nobody send inputs for
                await trio.sleep(AGREEMENT_TIMEOUT_MS / 1000)
                await store.until(lambda: [d.record.phase.value for d in store.deals()]
                                  == ["cancelled"])
            # No inputs are ever sent; the attacker has no provider signature to open with.
            with pytest.raises(SignatureRejected):
                await run_blocking(attacker_sync.open_deal, deal, signature, signature)
            while await run_blocking(attacker_sync.chain.now) <= deal.result_deadline:
                await trio.sleep(10)
            with pytest.raises(ContractRevert):
                await run_blocking(attacker_sync.claim_timeout, deal)
            await store.until(lambda: [d.record.phase.value for d in store.deals()]
                              == ["cancelled"])
            nursery.cancel_scope.cancel()

    assert (await attack.provider_chain.client.deal_state(deal)).status is DealStatus.NONE
    after = await attack.provider_chain.client.balance()
    assert (after.free, after.locked) == (before.free, before.locked)


class _Gate:
    """The network's InputsGate as the provider sees it: records whether inputs were asked."""

    def __init__(self) -> None:
        self.asked = False

    async def receive(self, deal_id: bytes, size: int, sink) -> None:
        self.asked = True


async def test_a_job_creator_without_the_deposit_is_not_asked_for_its_inputs(
    tmp_path: Path, autojump
) -> None:
    attack = await _attack(tmp_path, attacker_deposits=False)
    peer = str(attack.attacker.peer_id)
    assert isinstance(await attack.role.on_deal_proposal(peer, attack.proposal),
                      wire.DealAccepted)

    gate = _Gate()
    reply = await attack.role.on_job_request(peer, wire.JobRequest(
        chain_id=attack.proposal.chain_id, deal=attack.proposal.deal, module="hash",
        inputs_preamble=bytes(wire.PREAMBLE_BYTES), inputs_bytes=10,
        inputs_nonce=bytes(32), output_recipient=bytes(32)), gate)
    assert isinstance(reply.answer, wire.DealRefused) and "deposit first" in reply.answer.reason
    assert not gate.asked and attack.store.deals()[0].record.phase.value == "agreed"
    deal_state = await attack.provider_chain.client.deal_state(attack.deal)
    assert deal_state.status is DealStatus.NONE


@pytest.mark.parametrize("opened", [False, True], ids=["agreed", "found-open"])
async def test_inputs_other_than_the_job_offer_committed_to_are_never_run(
    tmp_path: Path, autojump, opened: bool
) -> None:
    # The job offer commits to its inputs (here to 32 zero bytes, which no inputs hash to): a
    # provider opens no deal on others, and one that finds its deal open on chain already (it
    # crashed between `openDeal` and its record) runs none of them.
    attack = await _attack(tmp_path, attacker_deposits=True)
    peer = str(attack.attacker.peer_id)
    assert isinstance(await attack.role.on_deal_proposal(peer, attack.proposal),
                      wire.DealAccepted)
    chain, deal = attack.provider_chain, attack.deal
    if opened:
        kept = attack.store.provider_deals()[0].detail
        await chain.open_deal(deal, kept.job_creator_signature, kept.provider_signature)
    deal_id = chain.deal_id(deal)
    other = b"\0\0\0\0" + b"not the committed inputs"
    sealer = wire.ChunkSealer(attack.role._identity.sealing_public_key,
                              wire.INPUTS_CONTEXT + deal_id, len(other))

    async def chunks():
        for chunk in sealer.seal(other):
            yield chunk

    reply = await attack.role.on_job_request(peer, wire.JobRequest(
        chain_id=attack.proposal.chain_id, deal=attack.proposal.deal, module="hash",
        inputs_preamble=sealer.preamble, inputs_bytes=len(other), inputs_nonce=bytes(32),
        output_recipient=bytes(32)), ChunksGate(chunks))
    then = "the job is not run" if opened else "the deal is not opened"
    assert reply.answer == wire.DealRefused(
        reason="the inputs are not the ones the deal's job offer committed to "
               f"(inputs_commitment); {then}")
    stored = attack.store.provider_deals()[0]
    assert stored.record.phase.value == ("open" if opened else "agreed")
    assert stored.detail.inputs_nonce is None and stored.detail.inputs_spool is None
    assert list(attack.role._spool.iterdir()) == []
    status = (await chain.client.deal_state(deal)).status
    assert status is (DealStatus.OPEN if opened else DealStatus.NONE)
