"""Real GossipNet nodes on 127.0.0.1 in this process, each under its own cancel scope."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import trio

from lilypad_p2p.identity import Identity
from lilypad_p2p.net import GossipNet, MarketTopic, NetEvent, OfferReceived
from lilypad_p2p.testing.offers import make_resource_offer
from lilypad_p2p.wire import ResourceOffer, SignedEnvelope

OFFER_LIFETIME_MS = 600_000
# Bounded waits for things the network reports (never a fixed sleep).
MESH_TIMEOUT_S = 30.0
DELIVERY_TIMEOUT_S = 15.0


def resource_offer(
    owner: Identity,
    *,
    market: str = "cpu",
    nonce: int = 1,
    created_at: int,
    expires_at: int | None = None,
) -> ResourceOffer:
    return make_resource_offer(
        market=market, provider=owner.address, created_at=created_at, nonce=nonce,
        expires_at=created_at + OFFER_LIFETIME_MS if expires_at is None else expires_at)


def signed_offer(owner: Identity, now_ms: int, *, market: str = "cpu", nonce: int = 1):
    return owner.sign_envelope(
        resource_offer(owner, market=market, nonce=nonce, created_at=now_ms), now_ms
    )


@dataclass
class Inbox:
    """Every offer envelope a node's event stream delivered, and a way to await more."""

    offers: list[SignedEnvelope] = field(default_factory=list)
    others: list[NetEvent] = field(default_factory=list)
    _changed: trio.Event = field(default_factory=trio.Event)

    def add(self, event: NetEvent) -> None:
        if isinstance(event, OfferReceived):
            self.offers.append(event.envelope)
        else:
            self.others.append(event)
        self._changed.set()
        self._changed = trio.Event()

    @property
    def ids(self) -> set[str]:
        return {envelope.envelope_id for envelope in self.offers}

    async def wait_for(self, ids: set[str], timeout_s: float = DELIVERY_TIMEOUT_S) -> None:
        await self.wait_until(lambda: ids <= self.ids, timeout_s)

    async def wait_until(self, condition: Callable[[], bool], timeout_s: float) -> None:
        with trio.fail_after(timeout_s):
            while not condition():
                await self._changed.wait()


@dataclass
class RunningNet:
    net: GossipNet
    identity: Identity
    scope: trio.CancelScope
    inbox: Inbox

    @property
    def addr(self) -> str:
        return self.net.listen_addrs()[0]

    def stop(self) -> None:
        self.scope.cancel()


async def start_net(
    nursery: trio.Nursery,
    *,
    bootstrap: Sequence[str] = (),
    markets: Sequence[str] = ("cpu",),
    job_markets: Sequence[str] = (),
    target_connections: int = 8,
    followers: Callable[[], Mapping[str, Sequence[str]]] = dict,
    offer_snapshot: Callable[[Sequence[str], bool], list[bytes]] | None = None,
) -> RunningNet:
    identity = Identity.generate()
    net = GossipNet(
        identity,
        listen_addrs=["/ip4/127.0.0.1/tcp/0"],
        bootstrap=bootstrap,
        markets=markets,
        job_markets=job_markets,
        target_connections=target_connections,
        followers=followers,
        offer_snapshot=offer_snapshot,
    )
    scope = trio.CancelScope()
    inbox = Inbox()

    async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with scope:
            async with trio.open_nursery() as inner:
                await inner.start(net.run)
                inner.start_soon(_drain, net, inbox)
                task_status.started()

    await nursery.start(run)
    return RunningNet(net, identity, scope, inbox)


async def _drain(net: GossipNet, inbox: Inbox) -> None:
    async for event in net.events:
        inbox.add(event)


async def wait_until(condition: Callable[[], bool], timeout_s: float, poll_s: float = 0.05) -> None:
    """Poll a condition the network reports, bounded by a deadline."""
    with trio.fail_after(timeout_s):
        while not condition():
            await trio.sleep(poll_s)


def market_topic(market: str = "cpu") -> str:
    return str(MarketTopic(market))
