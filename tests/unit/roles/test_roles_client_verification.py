"""The client's checks on a provider's answers, against a scripted provider on a real
(embedded) chain: a result whose outputs do not match the signed hash is never accepted, and a
good one is accepted and handed over (settled by the scripted provider). Trio's clock is an
autojumping `MockClock`; nothing here waits on a timer."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from scripted_provider import ScriptedProvider

from lilypad_p2p.clock import Clock, wall_clock_ms
from lilypad_p2p.identity import Identity
from lilypad_p2p.localnet import chain_test_accounts
from lilypad_p2p.market import OfferBook
from lilypad_p2p.roles import (
    ClientRole,
    DealChains,
    JobSubmission,
)
from lilypad_p2p.testing import MemoryNetwork, WatchedStore, funded_deal_chains, provider_listing

pytestmark = pytest.mark.chain
# Virtual seconds: the deal needs no timer, so a stuck one fails after the client's idle polls.
LIMIT_S = 60


async def _market(tmp_path: Path, *, lie: bool, settles: bool = False):
    mediator = chain_test_accounts(2)[1].address
    client_id, provider_id = Identity.generate(), Identity.generate()
    chain_id, chains = await funded_deal_chains([client_id, provider_id])
    clock = Clock(wall_clock_ms())  # from now on, trio's mock clock alone
    listing, record = provider_listing(provider_id, chain_id, (mediator,), clock())
    book = OfferBook()
    book.add(listing, clock())
    provider = ScriptedProvider(provider_id, chains[provider_id.address], lie=lie,
                                settles=settles)
    store = WatchedStore.open(tmp_path / "db")
    network = MemoryNetwork()
    provider.join(network)

    async def publish(body):
        return None

    client = ClientRole(
        client_id, store=store, chains=DealChains([chains[client_id.address]]),
        book=book, publish=publish, transport=network.transport(client_id.peer_id),
        node_record=lambda address: record if address == provider_id.address else None,
        mediators=(mediator,), results_dir=tmp_path / "results", clock_ms=clock)
    return client, store, provider, provider_id, network


async def test_outputs_not_matching_the_signed_hash_are_rejected(tmp_path, autojump):
    client, store, provider, provider_id, network = await _market(tmp_path, lie=True)
    with trio.fail_after(LIMIT_S):
        async with trio.open_nursery() as nursery:
            await nursery.start(client.run)
            key = await client.submit(JobSubmission(module="hash", params={"text": "x"},
                                                    target=provider_id.address))
            await store.until(lambda: store.phase(key) in {"rejected", "accepted", "settled"})
            nursery.cancel_scope.cancel()
    assert store.phase(key) == "rejected"
    assert provider.accepted == []
    [report] = network.reports
    assert (report.reporter, report.peer) == (str(client._identity.peer_id),
                                              str(provider_id.peer_id))


async def test_matching_outputs_are_accepted_and_the_acceptance_settles(tmp_path, autojump):
    client, store, provider, provider_id, network = await _market(tmp_path, lie=False,
                                                                  settles=True)
    with trio.fail_after(LIMIT_S):
        async with trio.open_nursery() as nursery:
            await nursery.start(client.run)
            key = await client.submit(JobSubmission(module="hash", params={"text": "x"},
                                                    target=provider_id.address))
            await store.until(lambda: store.phase(key) in {"rejected", "settled"})
            nursery.cancel_scope.cancel()
    assert store.phase(key) == "settled"
    assert len(provider.accepted) == 1
    assert network.reports == []
    assert store.result(key) is None  # the output is the results file's, not kept twice


async def test_a_bridged_jobs_output_is_kept_in_the_store_for_the_chain(tmp_path, autojump):
    client, store, _, provider_id, _ = await _market(tmp_path, lie=False, settles=True)
    request_id = bytes(range(32))  # a bridged deal's salt is its on-chain request's ID
    with trio.fail_after(LIMIT_S):
        async with trio.open_nursery() as nursery:
            await nursery.start(client.run)
            key = await client.submit(JobSubmission(module="hash", params={"text": "x"},
                                                    target=provider_id.address,
                                                    salt=request_id))
            await store.until(lambda: store.phase(key) in {"rejected", "settled"})
            nursery.cancel_scope.cancel()
    assert store.phase(key) == "settled"
    kept = store.result(key)
    assert kept is not None and kept == Path(store.get(key).detail.result_path).read_bytes()
