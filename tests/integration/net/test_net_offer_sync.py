"""A node that connects pulls the offers its peer holds (`/lilypad/sync/1.0.0`), validated."""

import pytest
import trio
from net_testbed import DELIVERY_TIMEOUT_S, Inbox, signed_offer, wait_until

from lilypad_p2p.identity import Identity
from lilypad_p2p.net import GossipNet, OfferReceived, wall_clock_ms

pytestmark = pytest.mark.net


async def test_newcomer_pulls_held_offers_and_drops_invalid_ones():
    owner, holder_identity = Identity.generate(), Identity.generate()
    held = signed_offer(owner, wall_clock_ms(), nonce=1)
    holder = GossipNet(
        holder_identity,
        listen_addrs=["/ip4/127.0.0.1/tcp/0"],
        markets=["cpu"],
        offer_snapshot=lambda markets: [held.encode(), b"\x00garbage"] if "cpu" in markets else [],
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
