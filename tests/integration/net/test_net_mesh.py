"""A handful of real nodes join through one bootstrap, deliver every valid offer, and keep
delivering after the bootstrap stops."""

import pytest
import trio
from net_testbed import (
    MESH_TIMEOUT_S,
    market_topic,
    signed_offer,
    start_net,
    wait_until,
)

from lilypad_p2p.net import PeerJoined, PeerLeft, wall_clock_ms

pytestmark = pytest.mark.net

NODES = 6
# Fewer than NODES - 1, so nodes must find each other by peer exchange, not just the bootstrap.
TARGET_CONNECTIONS = 3


async def test_mesh_through_one_bootstrap_survives_its_loss():
    async with trio.open_nursery() as nursery:
        bootstrap = await start_net(nursery, target_connections=TARGET_CONNECTIONS)
        others = [
            await start_net(
                nursery, bootstrap=[bootstrap.addr], target_connections=TARGET_CONNECTIONS
            )
            for _ in range(NODES - 1)
        ]
        everyone = [bootstrap, *others]
        topic = market_topic()

        # Every node found peers beyond the bootstrap and has a mesh on the market topic.
        def discovered() -> bool:
            for node in others:
                peers = {state.peer_id for state in node.net.peers()}
                if not peers - {str(bootstrap.net.peer_id)}:
                    return False
            return all(len(node.net.mesh_peers(topic)) >= 2 for node in everyone)

        await wait_until(discovered, MESH_TIMEOUT_S)

        offers = [
            signed_offer(node.identity, wall_clock_ms(), nonce=i) for i, node in enumerate(everyone)
        ]
        for node, offer in zip(everyone, offers, strict=True):
            await node.net.publish(offer)
        wanted = {offer.envelope_id for offer in offers}
        for node in everyone:
            await node.inbox.wait_for(wanted)
            assert len(node.inbox.offers) == len(wanted), "an offer was delivered twice"

        bootstrap.stop()
        gone = bootstrap.net.peer_id

        def healed() -> bool:
            return all(
                gone not in node.net.mesh_peers(topic) and len(node.net.mesh_peers(topic)) >= 1
                for node in others
            )

        await wait_until(healed, MESH_TIMEOUT_S)
        later = [
            signed_offer(node.identity, wall_clock_ms(), nonce=100 + i)
            for i, node in enumerate(others)
        ]
        for node, offer in zip(others, later, strict=True):
            await node.net.publish(offer)
        wanted_later = {offer.envelope_id for offer in later}
        for node in others:
            await node.inbox.wait_for(wanted_later)
            assert node.net.statistics().dropped == {}
        nursery.cancel_scope.cancel()


async def test_peer_events_and_listen_addrs():
    async with trio.open_nursery() as nursery:
        first = await start_net(nursery)
        assert first.addr.startswith("/ip4/127.0.0.1/tcp/")
        assert first.addr.endswith(f"/p2p/{first.net.peer_id}")
        second = await start_net(nursery, bootstrap=[first.addr])
        joined = PeerJoined(second.net.peer_id)
        await first.inbox.wait_until(lambda: joined in first.inbox.others, MESH_TIMEOUT_S)
        second.stop()
        left = PeerLeft(second.net.peer_id)
        await first.inbox.wait_until(lambda: left in first.inbox.others, MESH_TIMEOUT_S)
        assert [state.peer_id for state in first.net.peers()] == []
        nursery.cancel_scope.cancel()
