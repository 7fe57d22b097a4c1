"""A node that connects pulls the offers its peer holds (`/lilypad/sync/2.0.0`), validated; a
node asked by a peer that holds envelopes it lacks pulls them back at once."""

import pytest
import trio
from net_testbed import (
    DELIVERY_TIMEOUT_S,
    MESH_TIMEOUT_S,
    Inbox,
    signed_offer,
    start_net,
    wait_until,
)

from lilypad_p2p.identity import Identity
from lilypad_p2p.net import GossipNet, OfferReceived, wall_clock_ms
from lilypad_p2p.net._params import ANTI_ENTROPY_INTERVAL_S

pytestmark = pytest.mark.net


async def test_newcomer_pulls_held_offers_and_drops_invalid_ones():
    owner, holder_identity = Identity.generate(), Identity.generate()
    held = signed_offer(owner, wall_clock_ms(), nonce=1)
    holder = GossipNet(
        holder_identity,
        listen_addrs=["/ip4/127.0.0.1/tcp/0"],
        markets=["cpu"],
        offer_snapshot=lambda markets, _: (
            [held.encode(), b"\x00garbage"] if "cpu" in markets else []),
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(holder.run)
        newcomer = GossipNet(
            Identity.generate(),
            listen_addrs=["/ip4/127.0.0.1/tcp/0"],
            bootstrap=holder.listen_addrs()[:1],
            markets=["cpu"],
        )
        await nursery.start(newcomer.run)
        inbox = Inbox()

        async def drain() -> None:
            async for event in newcomer.events:
                inbox.add(event)

        nursery.start_soon(drain)
        await inbox.wait_for({held.envelope_id}, DELIVERY_TIMEOUT_S)
        (event,) = [e for e in inbox.offers]
        assert event.envelope_id == held.envelope_id
        await wait_until(
            lambda: newcomer.statistics().dropped.get("malformed") == 1, DELIVERY_TIMEOUT_S
        )
        assert newcomer.statistics().reported_peers == 1
        assert not any(isinstance(e, OfferReceived) for e in inbox.others)
        nursery.cancel_scope.cancel()


async def test_a_sync_request_naming_what_the_server_lacks_makes_it_pull_back():
    held_by_asker: list[bytes] = []
    async with trio.open_nursery() as nursery:
        server = await start_net(nursery)
        asker = await start_net(nursery, bootstrap=[server.addr],
                                offer_snapshot=lambda markets, _: list(held_by_asker))
        await wait_until(lambda: bool(server.net.peers()) and bool(asker.net.peers()),
                         MESH_TIMEOUT_S)
        await trio.sleep(1)  # the pulls both sides make on connecting are over
        # An offer only the asker holds (its own book), never gossiped.
        offer = signed_offer(asker.identity, wall_clock_ms(), nonce=7)
        held_by_asker.append(offer.encode())
        assert server.inbox.offers == []
        asked_at = trio.current_time()
        assert await asker.net._pull_offers(server.net.peer_id) == 0  # nothing new for it
        await server.inbox.wait_for({offer.envelope_id})
        # At once: the server's own first round comes at least 0.75 x the interval after its
        # start, and it started moments before the asker asked.
        assert trio.current_time() - asked_at < 2.0 < ANTI_ENTROPY_INTERVAL_S * 0.75
        # A second new offer, asked about at once: the server pulls back from a peer at most
        # once per interval, so what an asker names cannot make it pull again and again.
        later = signed_offer(asker.identity, wall_clock_ms(), nonce=8)
        held_by_asker.append(later.encode())
        await asker.net._pull_offers(server.net.peer_id)
        await trio.sleep(1.0)
        assert later.envelope_id not in {o.envelope_id for o in server.inbox.offers}
        nursery.cancel_scope.cancel()
