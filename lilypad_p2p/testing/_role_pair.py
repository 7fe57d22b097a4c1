"""A client and a provider, the real roles, on an in-memory network and a fresh embedded chain.

    async with role_pair(tmp_path, executor_factory=docker, modules=catalog) as pair:
        key = await pair.client.submit(JobSubmission(module="hash", params={"text": "hi"},
                                                     target=pair.provider_id.address))
        await pair.client_store.until(lambda: pair.client_store.phase(key) == "settled")

No sockets and no node processes: the roles meet through `MemoryNetwork` (every message still
through the codec), money moves on the embedded EVM, and the provider runs jobs with whatever
`executor_factory` gives it (a real Docker executor, or one that refuses). On trio's
autojumping `MockClock` with `inline_blocking` the pair's timeouts pass in no real time.
`funded_deal_chains` and `provider_listing` are the pieces, for tests that script one side.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

from lilypad_p2p import wire
from lilypad_p2p.blocking import run_blocking
from lilypad_p2p.chain import SettlementClient, deploy_settlement
from lilypad_p2p.clock import Clock, wall_clock_ms
from lilypad_p2p.exec import BUILTIN_IDS, Executor, ModuleCatalog
from lilypad_p2p.identity import Identity
from lilypad_p2p.localnet import chain_test_accounts
from lilypad_p2p.market import DEFAULT_TIMEOUTS, OfferBook, Timeouts
from lilypad_p2p.roles import ClientRole, DealChain, DealChains, ProviderRole, resource_offer
from lilypad_p2p.roles._resource_offer import Capacity
from lilypad_p2p.roles._transfer import spool_dir
from lilypad_p2p.testing._chain import embedded_test_chain
from lilypad_p2p.testing._memory_net import MemoryNetwork
from lilypad_p2p.testing._watched_store import WatchedStore

DEPOSIT_WEI = 10**18
STAKE_WEI = 10**18
PAIR_CAPACITY = Capacity(2000, 4096, 10_000)


async def funded_deal_chains(
    depositors: Sequence[Identity], mediators: Sequence[Identity] = ()
) -> tuple[int, dict[str, DealChain]]:
    """A fresh embedded chain with the settlement contract: `depositors` deposit DEPOSIT_WEI,
    `mediators` register with STAKE_WEI. The chain ID and each party's DealChain by address."""
    chain = embedded_test_chain()
    deployer = chain_test_accounts(1)[0]
    contract = await run_blocking(deploy_settlement, chain, deployer)
    chains = {}
    for identity in (*depositors, *mediators):
        await run_blocking(chain.transact, deployer, identity.address, b"", 3 * DEPOSIT_WEI)
        sync = SettlementClient(chain, contract, identity.eth_account())
        if identity in mediators:
            await run_blocking(sync.register_mediator, STAKE_WEI)
        else:
            await run_blocking(sync.deposit, DEPOSIT_WEI)
        chains[identity.address] = DealChain(sync, identity)
    return chain.chain_id, chains


def provider_listing(
    provider: Identity, chain_id: int, trusted: tuple[str, ...], now_ms: int
) -> tuple[wire.SignedEnvelope, wire.NodeRecord]:
    """A signed `hash` resource offer in market `cpu` and the provider's NodeRecord."""
    offer = resource_offer(provider=provider.address, market="cpu", capacity=PAIR_CAPACITY,
                           modules=(BUILTIN_IDS["hash"],), now_ms=now_ms,
                           chain_ids=(chain_id,), trusted_mediators=trusted)
    record = wire.NodeRecord(
        address=provider.address, peer_id=str(provider.peer_id), roles=("provider",),
        sealing_public_key=provider.sealing_public_key, markets=("cpu",),
        listen_addrs=(), created_at=now_ms, expires_at=now_ms + 60_000, nonce=1)
    return provider.sign_envelope(offer, now_ms), record


@dataclass(frozen=True, slots=True)
class RolePair:
    """The running pair, and what a test looks at."""

    client: ClientRole
    provider: ProviderRole
    client_id: Identity
    provider_id: Identity
    client_store: WatchedStore
    provider_store: WatchedStore
    chains: dict[str, DealChain]
    network: MemoryNetwork
    clock: Clock
    mediator: str
    published: list[wire.Message]


@asynccontextmanager
async def role_pair(
    home: Path,
    *,
    executor_factory: Callable[[], Awaitable[Executor]],
    modules: ModuleCatalog | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
) -> AsyncIterator[RolePair]:
    """Start a client and a provider (state under `home`), each with a deposit on one embedded
    chain; the client holds the provider's offer and NodeRecord. Both stop when the block ends.
    `modules` is the catalog both use (the provider's executor should run from it too).
    """
    client_id, provider_id = Identity.generate(), Identity.generate()
    mediator = chain_test_accounts(2)[1].address
    chain_id, chains = await funded_deal_chains([client_id, provider_id])
    clock = Clock(wall_clock_ms())
    listing, record = provider_listing(provider_id, chain_id, (mediator,), clock())
    network = MemoryNetwork()
    stores = [WatchedStore.open(home / f"{side}.sqlite") for side in ("client", "provider")]
    provider_book, client_book = OfferBook(), OfferBook()
    for book in (provider_book, client_book):
        book.add(listing, clock())
    provider = ProviderRole(
        provider_id, store=stores[1], chains=DealChains([chains[provider_id.address]]),
        book=provider_book, executor_factory=executor_factory, clock_ms=clock,
        timeouts=timeouts, transport=network.transport(provider_id.peer_id), modules=modules,
        spool=spool_dir(home, "provider"))
    provider.install()
    published: list[wire.Message] = []

    async def publish(body: wire.Message) -> None:
        published.append(body)

    client = ClientRole(
        client_id, store=stores[0], chains=DealChains([chains[client_id.address]]),
        book=client_book, publish=publish, transport=network.transport(client_id.peer_id),
        node_record=lambda address: record if address == provider_id.address else None,
        mediators=(mediator,), results_dir=home / "results", clock_ms=clock,
        timeouts=timeouts, modules=modules)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(provider.run)
            await nursery.start(client.run)
            yield RolePair(client, provider, client_id, provider_id, stores[0], stores[1],
                           chains, network, clock, mediator, published)
            nursery.cancel_scope.cancel()
    finally:
        for store in stores:
            store.close()
