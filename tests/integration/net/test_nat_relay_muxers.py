"""A relayed connection works with either muxer, on loopback between real GossipNets.

py-libp2p 0.8.1's Mplex streams were half duplex, so a relay (which reads and writes each of its
streams at once) deadlocked and the destination's inbound upgrade timed out; `GuardedMplex`
streams are full duplex (`_levers.DuplexStreamLock`). The asker knows the server only by its
`/p2p-circuit` address and exchanges a ping through the relay, then the server pings back over
the same relayed connection.
"""

import pytest
import trio

from lilypad_p2p.identity import Identity
from lilypad_p2p.net import GossipNet, Muxer, NatSettings

pytestmark = pytest.mark.net
EXCHANGE_TIMEOUT_S = 30.0


def _net(muxer: Muxer, *, relay: bool = False, bootstrap: tuple[str, ...] = ()) -> GossipNet:
    # One peer each, so discovery does not connect asker and server directly.
    return GossipNet(
        Identity.generate(), listen_addrs=["/ip4/127.0.0.1/tcp/0"], markets=["cpu"],
        bootstrap=bootstrap, muxers=(muxer,), target_connections=1, nat=NatSettings(relay=relay),
    )


@pytest.mark.parametrize("muxer", list(Muxer), ids=lambda m: m.value)
async def test_a_ping_reaches_a_peer_only_through_its_relay(muxer: Muxer):
    relay = _net(muxer, relay=True)
    async with trio.open_nursery() as nursery:
        await nursery.start(relay.run)
        server = _net(muxer, bootstrap=(relay.listen_addrs()[0],))
        asker = _net(muxer, bootstrap=(relay.listen_addrs()[0],))
        await nursery.start(server.run)
        await nursery.start(asker.run)
        with trio.fail_after(EXCHANGE_TIMEOUT_S):
            while not server.nat.circuit_addrs():
                # Loopback is reachable, so the server would never reserve on its own.
                await server.nat._reserve(relay.peer_id)
                server.nat._refresh_circuit_addrs()
        assert asker.nat.connection_kind(server.peer_id) == "none"
        with trio.fail_after(EXCHANGE_TIMEOUT_S):
            there = await asker.nat.ping(server.peer_id, server.nat.circuit_addrs())
            back = await server.nat.ping(asker.peer_id, [])
        assert there.connection == back.connection == "relayed"
        assert str(server.peer_id) in asker.nat.status()["relayed_peers"]
        nursery.cancel_scope.cancel()
