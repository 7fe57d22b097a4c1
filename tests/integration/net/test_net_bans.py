"""A peer that reaches the graylist is banned: disconnected, refused while the ban lasts, and
let back in once it expires (its score has decayed meanwhile), where offending again bans it
again. A plain py-libp2p attacker."""

import contextlib

import pytest
import trio
from libp2p import new_host
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.network.exceptions import SwarmException
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.mplex.mplex import MPLEX_PROTOCOL_ID, Mplex
from multiaddr import Multiaddr
from net_testbed import MESH_TIMEOUT_S, market_topic, signed_offer, wait_until

from lilypad_p2p.identity import Identity
from lilypad_p2p.net import GRAYLIST_THRESHOLD, GossipNet, NetLimits, wall_clock_ms
from lilypad_p2p.testing._hostile import publish_direct

pytestmark = pytest.mark.net

BAN_S = 8  # long enough for the score to decay above the graylist before it ends


async def test_a_graylisted_peer_is_banned_then_let_back_in():
    net = GossipNet(Identity.generate(), listen_addrs=["/ip4/127.0.0.1/tcp/0"],
                    markets=("cpu",), target_connections=1, limits=NetLimits(ban_s=BAN_S))
    key_pair = Identity.generate().libp2p_key_pair()
    attacker = new_host(
        key_pair=key_pair,
        sec_opt={TProtocol(NOISE_PROTOCOL_ID): NoiseTransport(
            key_pair, noise_privkey=create_x25519_key_pair().private_key
        )},
        muxer_opt={TProtocol(MPLEX_PROTOCOL_ID): Mplex},
    )
    stranger = Identity.generate()
    async with trio.open_nursery() as nursery:
        await nursery.start(net.run)
        info = info_from_p2p_addr(Multiaddr(net.listen_addrs()[0]))
        attacker_id = attacker.get_id()

        def connected() -> bool:
            return str(attacker_id) in {peer.peer_id for peer in net.peers()}

        async def offend_until_banned(nonces: tuple[int, ...]) -> None:
            # Offers signed by another key: each one low-tolerance; two reach the graylist (one,
            # if the last ban's counts have not decayed far). The node judges each at once.
            for nonce in nonces:
                if not connected():
                    break
                offer = signed_offer(stranger, wall_clock_ms(), nonce=nonce)
                with contextlib.suppress(SwarmException):  # banned while this one was sent
                    await publish_direct(attacker, info.peer_id, market_topic(), [offer.encode()])
                await trio.sleep(0.2)
            await wait_until(lambda: not connected(), MESH_TIMEOUT_S)
            assert net.statistics().banned_peers == 1

        async with attacker.run([Multiaddr("/ip4/127.0.0.1/tcp/0")]):
            await attacker.connect(info)
            await wait_until(connected, MESH_TIMEOUT_S)
            await offend_until_banned(nonces=(1, 2, 3))
            banned_at = trio.current_time()

            # Refused while banned: the node closes the connection right after the handshake.
            for peer in list(attacker.get_network().get_connections_map()):
                await attacker.disconnect(peer)
            with trio.move_on_after(3), contextlib.suppress(Exception):  # closed: refused too
                await attacker.connect(info)
            await trio.sleep(0.5)
            assert not connected()
            assert net.statistics().connections_refused["banned"] >= 1

            # Its score decays while it is away (above the graylist again before the ban ends).
            # It dials from just before the end: the first connection the node admits must
            # find it back in pubsub too, where a new offence counts and bans it again.
            await trio.sleep_until(banned_at + BAN_S - 0.5)
            with trio.fail_after(MESH_TIMEOUT_S):
                while not connected():
                    for peer in list(attacker.get_network().get_connections_map()):
                        await attacker.disconnect(peer)
                    with contextlib.suppress(Exception):  # refused until the ban is lifted
                        await attacker.connect(info)
                    await trio.sleep(0.05)
            assert net.peer_score(attacker_id) > GRAYLIST_THRESHOLD
            await trio.sleep(2)  # two enforcer sweeps: it stays
            assert connected()
            assert net.statistics().banned_peers == 0

            await offend_until_banned(nonces=(4, 5, 6))
        nursery.cancel_scope.cancel()
