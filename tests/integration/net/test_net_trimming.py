"""Over its high-water mark a node closes its lowest-scored peers, never one it has a deal with.
Plain py-libp2p peers; one of them has scored badly, one is the node's deal partner."""

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
from net_testbed import MESH_TIMEOUT_S, wait_until

from lilypad_p2p.identity import Identity
from lilypad_p2p.net import GossipNet, NetLimits, PeerAction

pytestmark = pytest.mark.net

PEERS = 10  # max_connections 10: trimming starts at 9 and closes down to 7


def _host():
    key_pair = Identity.generate().libp2p_key_pair()
    return new_host(
        key_pair=key_pair,
        sec_opt={TProtocol(NOISE_PROTOCOL_ID): NoiseTransport(
            key_pair, noise_privkey=create_x25519_key_pair().private_key
        )},
        muxer_opt={TProtocol(MPLEX_PROTOCOL_ID): Mplex},
    )


async def test_trimming_closes_the_lowest_scored_and_keeps_the_deal_partner():
    net = GossipNet(Identity.generate(), listen_addrs=["/ip4/127.0.0.1/tcp/0"],
                    target_connections=1,
                    limits=NetLimits(max_connections=PEERS, max_inbound=PEERS, max_outbound=PEERS))
    hosts = [_host() for _ in range(PEERS - 1)]
    partner, worst = hosts[0].get_id(), hosts[1].get_id()
    net.set_deal_peers(lambda peer: peer == partner)
    async with trio.open_nursery() as nursery:
        await nursery.start(net.run)
        info = info_from_p2p_addr(Multiaddr(net.listen_addrs()[0]))
        # Worse than everyone, but not graylisted (that would be a ban, not a trim).
        net.report_peer(worst, PeerAction.MID_TOLERANCE, "test")
        net.report_peer(partner, PeerAction.LOW_TOLERANCE, "test")  # low score, but protected
        for host in hosts:
            await nursery.start(_run_host, host)
            await host.connect(info)
        await wait_until(lambda: net.statistics().trimmed_peers >= 2, MESH_TIMEOUT_S)
        connected = {peer.peer_id for peer in net.peers()}
        assert str(partner) in connected
        assert str(worst) not in connected
        assert len(connected) <= PEERS - 2
        nursery.cancel_scope.cancel()


async def _run_host(host, task_status=trio.TASK_STATUS_IGNORED) -> None:
    async with host.run([Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        task_status.started()
        await trio.sleep_forever()
