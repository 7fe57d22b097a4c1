"""Pins `_swarm_guard`'s fix of py-libp2p 0.8.1's inbound-slot leak, quickly and in-process.

The library's inbound limiter has max_connections - min_connections tokens (here 12 - 8 = 4)
and returned a token only when the Swarm stopped: the fifth sequential inbound connection in
the node's life was refused although none was open. With the fix, every one gets in.
"""

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

from lilypad_p2p.identity import Identity
from lilypad_p2p.net import GossipNet, NetLimits

pytestmark = pytest.mark.net

SEQUENTIAL = 12


async def test_sequential_inbound_connections_do_not_use_up_the_library_slots():
    net = GossipNet(
        Identity.generate(), listen_addrs=["/ip4/127.0.0.1/tcp/0"], target_connections=8,
        limits=NetLimits(max_connections=12, max_inbound=12, max_outbound=12),
    )
    key_pair = Identity.generate().libp2p_key_pair()
    attacker = new_host(
        key_pair=key_pair,
        sec_opt={TProtocol(NOISE_PROTOCOL_ID): NoiseTransport(
            key_pair, noise_privkey=create_x25519_key_pair().private_key
        )},
        muxer_opt={TProtocol(MPLEX_PROTOCOL_ID): Mplex},
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(net.run)
        info = info_from_p2p_addr(Multiaddr(net.listen_addrs()[0]))
        async with attacker.run([Multiaddr("/ip4/127.0.0.1/tcp/0")]):
            for n in range(SEQUENTIAL):
                with trio.fail_after(20):
                    await attacker.connect(info)
                    # Refused connections are closed by the node right after the handshake.
                    await trio.sleep(0.3)
                    assert attacker.get_network().get_connections(info.peer_id), n
                    await attacker.disconnect(info.peer_id)
                    while net.statistics().connected_peers:
                        await trio.sleep(0.05)
        assert net.statistics().connections_accepted == SEQUENTIAL
        nursery.cancel_scope.cancel()
