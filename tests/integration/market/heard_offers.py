"""What an attacker's own GossipNet hears, for the market attacker tests."""

from __future__ import annotations

from lilypad_p2p import wire
from lilypad_p2p.net import GossipNet, OfferReceived


async def first_resource_offer(net: GossipNet) -> wire.ResourceOffer:
    """The first resource offer `net` receives (the provider's, in a two-node world)."""
    async for event in net.events:
        if isinstance(event, OfferReceived) and isinstance(event.envelope.body,
                                                           wire.ResourceOffer):
            return event.envelope.body
    raise AssertionError("the network stopped before any resource offer came")
