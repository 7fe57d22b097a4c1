"""Nodes that only publish into a market (providers) reach its followers (clients, solvers)
and receive none of its gossip.

The publishers join through a hub that follows nothing and are content with one connection,
so only discovery's follower rule can connect them to the followers their NodeRecords would
name (here given directly, as the node builds them from its directory).
"""

import pytest
import trio
from net_testbed import (
    MESH_TIMEOUT_S,
    market_topic,
    signed_offer,
    start_net,
    wait_until,
)

from lilypad_p2p.net import wall_clock_ms
from lilypad_p2p.net._params import PUBLISHER_FOLLOWER_PEERS

pytestmark = pytest.mark.net

PUBLISHERS = 3


async def test_publishers_reach_every_follower_and_hear_no_market_gossip():
    async with trio.open_nursery() as nursery:
        first = await start_net(nursery)
        second = await start_net(nursery, bootstrap=[first.addr])
        followers = [first, second]
        known = {str(f.net.peer_id): tuple(f.net.listen_addrs()) for f in followers}
        hub = await start_net(nursery, markets=())
        publishers = [
            await start_net(nursery, bootstrap=[hub.addr], markets=(), target_connections=1,
                            followers=lambda: known)
            for _ in range(PUBLISHERS)
        ]
        topic = market_topic()

        def connected_to_followers() -> bool:
            return all(len(p.net.topic_peers(topic)) >= PUBLISHER_FOLLOWER_PEERS
                       for p in publishers) and bool(first.net.mesh_peers(topic))

        await wait_until(connected_to_followers, MESH_TIMEOUT_S)

        offers = [signed_offer(p.identity, wall_clock_ms(), nonce=i)
                  for i, p in enumerate(publishers)]
        for publisher, offer in zip(publishers, offers, strict=True):
            await publisher.net.publish(offer)
        wanted = {offer.envelope_id for offer in offers}
        for follower in followers:
            await follower.inbox.wait_for(wanted)

        # Followers know the publishers do not subscribe, so they never send them the topic;
        # a follower's own offer reaches the other follower, and no publisher or the hub.
        silent = {str(node.net.peer_id) for node in [*publishers, hub]}
        for follower in followers:
            assert not silent & {str(peer) for peer in follower.net.topic_peers(topic)}
        ours = signed_offer(first.identity, wall_clock_ms(), nonce=99)
        await first.net.publish(ours)
        await second.inbox.wait_for({ours.envelope_id})
        for node in [*publishers, hub]:
            assert node.inbox.offers == []
            assert node.net.statistics().dropped == {}

        # The library keeps a copy of each message for every connected peer that has not
        # subscribed, in case its subscription is on the way; a publisher never subscribes, so
        # our forwarding keeps copies only for peers not yet identified (`_levers`, lever 17).
        latest = signed_offer(first.identity, wall_clock_ms(), nonce=100)
        await first.net.publish(latest)
        await second.inbox.wait_for({latest.envelope_id})
        for follower in followers:
            assert not {str(peer) for peer in follower.net._gossipsub._pending_messages} & silent
        nursery.cancel_scope.cancel()
