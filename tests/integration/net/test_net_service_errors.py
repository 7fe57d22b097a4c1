"""Errors at the net boundary are ours (NetError subtree), not libp2p's."""

import socket

import pytest
import trio

from lilypad_p2p.identity import Identity
from lilypad_p2p.net import GossipNet, NetError, NotListening, PublishError, TopicError
from lilypad_p2p.testing.offers import make_resource_offer
from lilypad_p2p.wire import SignedEnvelope

pytestmark = pytest.mark.net


def test_bad_addresses_and_markets_are_refused_at_construction():
    identity = Identity.generate()
    with pytest.raises(NetError, match="listen"):
        GossipNet(identity, listen_addrs=["/ip4/127.0.0.1/tcp/notaport"])
    with pytest.raises(NetError, match="bootstrap"):
        GossipNet(identity, listen_addrs=["/ip4/127.0.0.1/tcp/0"], bootstrap=["nonsense"])
    with pytest.raises(TopicError):
        GossipNet(identity, listen_addrs=["/ip4/127.0.0.1/tcp/0"], markets=["CPU!"])


async def test_listening_on_a_taken_port_is_a_net_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        net = GossipNet(Identity.generate(), listen_addrs=[f"/ip4/127.0.0.1/tcp/{port}"])
        with pytest.raises(NetError, match="cannot listen"):
            await net.run()


async def test_publish_needs_a_running_net_and_a_valid_envelope():
    identity = Identity.generate()
    net = GossipNet(identity, listen_addrs=["/ip4/127.0.0.1/tcp/0"], markets=["cpu"])
    now = 1_800_000_000_000
    body = make_resource_offer(provider=identity.address, created_at=now, expires_at=now + 1_000)
    stale = identity.sign_envelope(body, now)
    with pytest.raises(NotListening):
        await net.publish(stale)
    with pytest.raises(NotListening):
        await net.subscribe_market("gpu")
    async with trio.open_nursery() as nursery:
        await nursery.start(net.run)
        with pytest.raises(PublishError):
            await net.publish(stale)  # signed in 2027 with a 1 s life: expired or future here
        forged = SignedEnvelope(
            signer=stale.signer, published_at=now, body=body, signature=b"\x01" * 65
        )
        with pytest.raises(PublishError):
            await net.publish(forged)
        with pytest.raises(TopicError):
            await net.subscribe_market("Not A Market")
        nursery.cancel_scope.cancel()
