"""A Yamux peer that writes a corrupt Noise frame after the handshake costs us that connection
only, as `test_net_hostile_frames` shows for Mplex (`_levers.GuardedMplex`).

py-libp2p's Yamux frame loop ends the connection itself on a read error; this pins that our
default muxer keeps doing so: honest node A stays up and keeps gossiping.
"""

import pytest
import trio
from libp2p import new_host
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from multiaddr import Multiaddr
from net_testbed import MESH_TIMEOUT_S, market_topic, signed_offer, start_net, wait_until

from lilypad_p2p.identity import Identity
from lilypad_p2p.net import wall_clock_ms

pytestmark = pytest.mark.net


async def test_corrupt_noise_frame_on_yamux_closes_only_that_connection():
    identity = Identity.generate()
    key_pair = identity.libp2p_key_pair()
    hostile = new_host(
        key_pair=key_pair,
        sec_opt={
            TProtocol(NOISE_PROTOCOL_ID): NoiseTransport(
                key_pair, noise_privkey=create_x25519_key_pair().private_key
            )
        },
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux},
    )
    async with trio.open_nursery() as nursery:
        a = await start_net(nursery, target_connections=1)
        b = await start_net(nursery, bootstrap=[a.addr], target_connections=1)
        await wait_until(lambda: b.net.peer_id in a.net.mesh_peers(market_topic()), MESH_TIMEOUT_S)
        async with hostile.run([Multiaddr("/ip4/127.0.0.1/tcp/0")]):
            await hostile.connect(info_from_p2p_addr(Multiaddr(a.addr)))
            hostile_id = str(hostile.get_id())
            await wait_until(
                lambda: hostile_id in {p.peer_id for p in a.net.peers()}, MESH_TIMEOUT_S
            )
            (connection,) = hostile.get_network().get_connections(a.net.peer_id)
            assert isinstance(connection.muxed_conn, Yamux)
            noise = connection.muxed_conn.secured_conn.conn
            # A length-prefixed frame that is not valid ciphertext under the session keys.
            await noise.read_writer.write_msg(b"\x00" * 64)
            await wait_until(
                lambda: hostile_id not in {p.peer_id for p in a.net.peers()}, MESH_TIMEOUT_S
            )

        offer = signed_offer(b.identity, wall_clock_ms(), nonce=1)
        await b.net.publish(offer)
        await a.inbox.wait_for({offer.envelope_id})
        nursery.cancel_scope.cancel()
