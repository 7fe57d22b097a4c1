"""The provider's agreement timeout on trio's autojumping `MockClock`: deals it signed whose
inputs never come (so it never opens them on chain) end once the timeout has passed, in no
real time, and their room takes new deals (against a real embedded chain)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest
import trio

from lilypad_p2p import wire
from lilypad_p2p.clock import Clock, wall_clock_ms
from lilypad_p2p.exec import ExecError
from lilypad_p2p.identity import Identity
from lilypad_p2p.market import AGREEMENT_TIMEOUT_MS, OfferBook
from lilypad_p2p.roles import (
    DealChains,
    ProviderRole,
    build_deal,
    deal_to_wire,
    resource_offer,
)
from lilypad_p2p.roles._provider import PROVIDER_IDLE_TICK_S, PROVIDER_TICK_S
from lilypad_p2p.roles._resource_offer import Capacity
from lilypad_p2p.testing import WatchedStore, funded_deal_chains
from lilypad_p2p.testing._chain import chain_test_accounts
from lilypad_p2p.testing.offers import make_job_offer

pytestmark = pytest.mark.chain
HASH_SPEC = wire.ResourceSpec(milli_cpu=500, ram_mb=64, disk_mb=16)
# Virtual seconds: the timeout, the provider's next look at its deals, and room to spare.
LIMIT_S = AGREEMENT_TIMEOUT_MS / 1000 + PROVIDER_TICK_S + 60


class _Provider(NamedTuple):
    role: ProviderRole
    store: WatchedStore
    clock: Clock
    client: Identity
    proposal: Callable[[], wire.DealProposal]


async def _provider(tmp_path: Path) -> _Provider:
    """A provider with room for two 500-mCPU jobs, no Docker, and a client's proposals."""
    mediator = chain_test_accounts(2)[1].address
    client, provider = Identity.generate(), Identity.generate()
    chain_id, chains = await funded_deal_chains([client, provider])
    client_chain, provider_chain = chains[client.address], chains[provider.address]
    clock = Clock(wall_clock_ms())  # from now on, trio's mock clock alone
    offer = resource_offer(provider=provider.address, market="cpu",
                           capacity=Capacity(1000, 4096, 10_000), modules=("hash",),
                           now_ms=clock(), chain_ids=(chain_id,),
                           trusted_mediators=(mediator,))
    book = OfferBook()
    book.add(provider.sign_envelope(offer, clock()), clock())

    async def no_docker():
        raise ExecError("no Docker in this test: no job runs")

    store = WatchedStore.open(tmp_path / "db")
    role = ProviderRole(provider, store=store, chains=DealChains([provider_chain]), book=book,
                        executor_factory=no_docker, clock_ms=clock)

    def proposal() -> wire.DealProposal:
        now = clock()
        job = make_job_offer(job_creator=client.address, spec=HASH_SPEC,
                             trusted_mediators=(mediator,),
                             chain_id=chain_id, deadline=now + 300_000, created_at=now,
                             expires_at=now + 60_000, nonce=secrets.randbits(63))
        deal = build_deal(job, offer, salt=secrets.token_bytes(32))
        return wire.DealProposal(chain_id=chain_id,
                                 job_offer=client.sign_envelope(job, now).encode(),
                                 resource_offer_cid=offer.cid, deal=deal_to_wire(deal),
                                 job_creator_signature=client_chain.sign_deal(deal))

    return _Provider(role, store, clock, client, proposal)


async def test_unopened_deals_time_out_on_trios_clock_and_free_their_room(
    tmp_path: Path, autojump
) -> None:
    role, store, clock, client, proposal = await _provider(tmp_path)
    with trio.fail_after(LIMIT_S):
        async with trio.open_nursery() as nursery:
            await nursery.start(role.run)
            answers = [await role.on_deal_proposal(str(client.peer_id), proposal())
                       for _ in range(3)]
            assert [type(a) for a in answers] == [
                wire.DealAccepted, wire.DealAccepted, wire.DealRefused]
            agreed_ms = clock()
            await store.until(
                lambda: {d.record.phase.value for d in store.deals()} == {"cancelled"})
            # Ended no earlier than the timeout after their agreement.
            assert all(store.transitions(d.record.key)[-1].at_ms - agreed_ms
                       >= AGREEMENT_TIMEOUT_MS for d in store.deals())
            assert isinstance(await role.on_deal_proposal(str(client.peer_id), proposal()),
                              wire.DealAccepted)
            nursery.cancel_scope.cancel()


async def test_an_idle_provider_reads_its_deals_each_idle_tick_and_at_once_on_a_new_deal(
    tmp_path: Path, autojump, monkeypatch: pytest.MonkeyPatch
) -> None:
    role, store, _, client, proposal = await _provider(tmp_path)
    reads: list[float] = []
    read_deals = store.provider_deals
    next_read = trio.Event()

    def counted(**kwargs):
        nonlocal next_read
        reads.append(trio.current_time())
        next_read.set()
        next_read = trio.Event()
        return read_deals(**kwargs)

    monkeypatch.setattr(store, "provider_deals", counted)
    with trio.fail_after(LIMIT_S):
        async with trio.open_nursery() as nursery:
            await nursery.start(role.run)
            await trio.sleep(6 * PROVIDER_IDLE_TICK_S)
            assert len(reads) <= 7  # the first tick, then one per idle tick: not one a second
            before = len(reads)
            read = next_read
            assert isinstance(await role.on_deal_proposal(str(client.peer_id), proposal()),
                              wire.DealAccepted)
            asked_at = trio.current_time()
            await read.wait()
            assert reads[-1] - asked_at < PROVIDER_TICK_S
            # With a deal open, the provider looks every tick again.
            await trio.sleep(5 * PROVIDER_TICK_S)
            assert len(reads) >= before + 5
            nursery.cancel_scope.cancel()
