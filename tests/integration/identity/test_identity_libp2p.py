"""Our Identity's secp256k1 key pair really works as a py-libp2p host key with Noise only.

Two real py-libp2p hosts (plain library calls, not our net/ package) on 127.0.0.1 connect and
exchange bytes over a stream; each side's Noise-authenticated view of the other must be the
peer ID (and so the Ethereum address) the other's Identity declares.
"""

import multiaddr
import pytest
import trio
from libp2p import new_host
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.network.exceptions import SwarmException
from libp2p.peer.peerinfo import PeerInfo
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.mplex.mplex import MPLEX_PROTOCOL_ID, Mplex

from lilypad_p2p.identity import Identity, address_from_peer_id

pytestmark = pytest.mark.net

CONNECT_TIMEOUT_S = 20
ECHO_PROTOCOL = TProtocol("/lilypad-test/echo/1")


def noise_only_host(identity):
    key_pair = identity.libp2p_key_pair()
    noise = NoiseTransport(key_pair, noise_privkey=create_x25519_key_pair().private_key)
    return new_host(
        key_pair=key_pair,
        sec_opt={TProtocol(NOISE_PROTOCOL_ID): noise},
        muxer_opt={TProtocol(MPLEX_PROTOCOL_ID): Mplex},
    )


async def echo(stream):
    data = await stream.read(1024)
    await stream.write(data)
    await stream.close()


async def test_two_hosts_authenticate_each_other_with_identity_keys():
    alice, bob = Identity.generate(), Identity.generate()
    alice_host, bob_host = noise_only_host(alice), noise_only_host(bob)
    assert alice_host.get_id() == alice.peer_id
    assert bob_host.get_id() == bob.peer_id
    listen = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]
    bob_host.set_stream_handler(ECHO_PROTOCOL, echo)
    with trio.fail_after(CONNECT_TIMEOUT_S):
        async with alice_host.run(listen_addrs=listen), bob_host.run(listen_addrs=listen):
            await alice_host.connect(PeerInfo(bob.peer_id, bob_host.get_addrs()))
            stream = await alice_host.new_stream(bob.peer_id, [ECHO_PROTOCOL])
            await stream.write(b"ping")
            assert await stream.read(1024) == b"ping"
            await stream.close()

            # What each side's Noise handshake proved about the other.
            assert stream.muxed_conn.peer_id == bob.peer_id
            assert address_from_peer_id(stream.muxed_conn.peer_id) == bob.address
            while not bob_host.get_network().get_connections(alice.peer_id):
                await trio.sleep(0.01)  # bounded by fail_after: the accept side may lag
            (inbound,) = bob_host.get_network().get_connections(alice.peer_id)
            assert inbound.muxed_conn.peer_id == alice.peer_id
            assert address_from_peer_id(inbound.muxed_conn.peer_id) == alice.address


async def test_a_host_refuses_to_dial_a_peer_id_it_cannot_authenticate():
    """Dialling Bob's address while expecting Carol's peer ID fails the Noise handshake."""
    alice, bob, carol = Identity.generate(), Identity.generate(), Identity.generate()
    alice_host, bob_host = noise_only_host(alice), noise_only_host(bob)
    listen = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]
    with trio.fail_after(CONNECT_TIMEOUT_S):
        async with alice_host.run(listen_addrs=listen), bob_host.run(listen_addrs=listen):
            with pytest.raises(SwarmException, match="no addresses established"):
                await alice_host.connect(PeerInfo(carol.peer_id, bob_host.get_addrs()))
            assert not alice_host.get_network().get_connections(carol.peer_id)
