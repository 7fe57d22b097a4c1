"""The attacker's kit and the after-each-attack checks, for the hostile-peer suite.

Attackers are plain py-libp2p hosts (none of our net code) with their own keys; the target is
a real `lilypad-p2p node --provider` process. After every attack `assert_node_healthy` checks
the four things a public node owes everyone else: the process is alive, an honest peer (our
own GossipNet, a fresh key) connects within 2 s and still receives the node's offer, the
node's RSS is under 300 MB, and the offender is no longer connected.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

import trio

from lilypad_p2p.identity import Identity
from lilypad_p2p.localnet import NodeProcess
from lilypad_p2p.net import GossipNet, OfferReceived
from lilypad_p2p.testing import _hostile

publish_direct = _hostile.publish_direct
raw_host = _hostile.raw_host
rss_bytes = _hostile.rss_bytes


@contextlib.asynccontextmanager
async def connected_host(target: NodeProcess, muxer: str = "mplex") -> AsyncIterator:
    async with _hostile.connected_host(target.dial_addr, muxer) as pair:
        yield pair


@contextlib.asynccontextmanager
async def gossip_attacker(target: NodeProcess, topics: tuple[str, ...],
                          identity: Identity | None = None) -> AsyncIterator:
    async with _hostile.gossip_attacker(target.dial_addr, topics, identity) as triple:
        yield triple



HONEST_CONNECT_S = 2.0
# The node serves its offer by offer sync as soon as a peer connects.
HONEST_OFFER_S = 15.0
MAX_RSS_BYTES = 300 * 1024 * 1024
OFFENDER_GONE_S = 15.0


async def node_call(node: NodeProcess, method: str) -> object:
    return await trio.to_thread.run_sync(node.call, method)


async def connected_peer_ids(node: NodeProcess) -> set[str]:
    peers = await node_call(node, "peers")
    return {peer["peer_id"] for peer in peers}  # type: ignore[union-attr]


async def gossip_statistics(node: NodeProcess) -> dict:
    status = await node_call(node, "status")
    return status["gossip"]  # type: ignore[index]


async def wait_offender_gone(node: NodeProcess, offender: str) -> None:
    with trio.fail_after(OFFENDER_GONE_S):
        while offender in await connected_peer_ids(node):
            await trio.sleep(0.2)


async def assert_node_healthy(node: NodeProcess, *, offender: str | None = None) -> float:
    """The after-each-attack checks; returns how long the honest peer took to connect (s)."""
    assert node.process.poll() is None, f"node died:\n{node.log_tail()}"
    rss = rss_bytes(node.process.pid)
    assert rss < MAX_RSS_BYTES, f"node RSS {rss / 2**20:.0f} MB"
    if offender is not None:
        await wait_offender_gone(node, offender)
    honest = Identity.generate()
    net = GossipNet(honest, listen_addrs=["/ip4/127.0.0.1/tcp/0"], markets=("cpu",),
                    target_connections=1)
    async with trio.open_nursery() as nursery:
        await nursery.start(net.run)
        start = time.monotonic()
        with trio.fail_after(HONEST_CONNECT_S):
            await net.connect(node.dial_addr)
        connect_s = time.monotonic() - start
        with trio.fail_after(HONEST_OFFER_S):
            async for event in net.events:
                if (
                    isinstance(event, OfferReceived)
                    and event.envelope.signer.lower() == node.status["address"].lower()
                ):
                    break
        nursery.cancel_scope.cancel()
    assert node.process.poll() is None, f"node died:\n{node.log_tail()}"
    return connect_s
