"""Pins `_containment`: in py-libp2p 0.8.1 a stream handler's exception escapes into the
connection's nursery and from there into the Swarm's, ending the host. Contained, it costs the
peer that provoked it a report and its connection; the node and its other peers go on."""

import pytest
import trio
from libp2p import new_host
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.mplex.mplex import MPLEX_PROTOCOL_ID, Mplex
from multiaddr import Multiaddr
from net_testbed import MESH_TIMEOUT_S, signed_offer, start_net, wait_until

from lilypad_p2p.identity import Identity
from lilypad_p2p.net import wall_clock_ms

pytestmark = pytest.mark.net

FRAGILE = TProtocol("/test/fragile/1")


async def test_a_failing_stream_handler_costs_the_peer_its_connection_not_the_node():
    key_pair = Identity.generate().libp2p_key_pair()
    attacker = new_host(
        key_pair=key_pair,
        sec_opt={TProtocol(NOISE_PROTOCOL_ID): NoiseTransport(
            key_pair, noise_privkey=create_x25519_key_pair().private_key
        )},
        muxer_opt={TProtocol(MPLEX_PROTOCOL_ID): Mplex},
    )

    async def fragile(stream) -> None:
        data = await stream.read(100)
        raise ValueError(f"cannot parse {data!r}")  # a bug any peer's bytes can reach

    async with trio.open_nursery() as nursery:
        a = await start_net(nursery, target_connections=1)
        b = await start_net(nursery, bootstrap=[a.addr], target_connections=1)
        a.net._host.set_stream_handler(FRAGILE, fragile)
        info = info_from_p2p_addr(Multiaddr(a.addr))
        async with attacker.run([Multiaddr("/ip4/127.0.0.1/tcp/0")]):
            await attacker.connect(info)
            stream = await attacker.new_stream(info.peer_id, [FRAGILE])
            await stream.write(b"\xde\xad")
            attacker_id = str(attacker.get_id())
            await wait_until(
                lambda: attacker_id not in {p.peer_id for p in a.net.peers()}, MESH_TIMEOUT_S
            )
        stats = a.net.statistics()
        assert stats.peer_failures_contained == 1
        assert stats.reports["low_tolerance"] == 1

        await wait_until(lambda: bool(a.net.peers()), MESH_TIMEOUT_S)
        offer = signed_offer(b.identity, wall_clock_ms(), nonce=1)
        await b.net.publish(offer)
        await a.inbox.wait_for({offer.envelope_id})
        nursery.cancel_scope.cancel()
