"""A hostile peer built from plain py-libp2p (none of our net code) attacks honest node A.

Topology: hostile H -- A -- B. A must drop every bad message before delivering or forwarding
it, so B never sees one; H's GossipSub score at A must fall below the graylist threshold, which
gets H banned (disconnected); honest traffic between A and B must keep flowing.
"""

import os

import pytest
import trio
from libp2p import new_host
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11, GossipSub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.mplex.mplex import MPLEX_PROTOCOL_ID, Mplex
from libp2p.tools.anyio_service import background_trio_service
from multiaddr import Multiaddr
from net_testbed import (
    DELIVERY_TIMEOUT_S,
    MESH_TIMEOUT_S,
    RunningNet,
    market_topic,
    resource_offer,
    signed_offer,
    start_net,
    wait_until,
)

from lilypad_p2p.identity import Identity
from lilypad_p2p.net import (
    GRAYLIST_THRESHOLD,
    NODES_TOPIC,
    DropReason,
    NetStatistics,
    wall_clock_ms,
)
from lilypad_p2p.wire import MAX_CLOCK_SKEW_MS, MAX_MESSAGE_BYTES, SignedEnvelope

pytestmark = pytest.mark.net

CPU, GPU, NODES = market_topic("cpu"), market_topic("gpu"), str(NODES_TOPIC)


def _plain_libp2p_peer(identity: Identity) -> tuple[object, Pubsub, GossipSub]:
    key_pair = identity.libp2p_key_pair()
    host = new_host(
        key_pair=key_pair,
        sec_opt={
            TProtocol(NOISE_PROTOCOL_ID): NoiseTransport(
                key_pair, noise_privkey=create_x25519_key_pair().private_key
            )
        },
        muxer_opt={TProtocol(MPLEX_PROTOCOL_ID): Mplex},
        listen_addrs=[Multiaddr("/ip4/127.0.0.1/tcp/0")],
    )
    gossipsub = GossipSub(
        protocols=[PROTOCOL_ID_V11], degree=4, degree_low=3, degree_high=6, heartbeat_interval=1
    )
    return host, Pubsub(host, gossipsub, strict_signing=True), gossipsub


def _handled_in(stats: NetStatistics) -> int:
    """How many messages a node has disposed of without delivering them."""
    return (
        sum(stats.dropped.values()) + stats.graylisted_messages_ignored + stats.duplicates_skipped
    )


def _handled(node: RunningNet) -> int:
    return _handled_in(node.net.statistics())


def _outcome(before: NetStatistics, after: NetStatistics) -> str:
    """What happened to the one message handled between two snapshots."""
    if after.duplicates_skipped > before.duplicates_skipped:
        return "duplicate"
    if after.graylisted_messages_ignored > before.graylisted_messages_ignored:
        return "graylisted"
    (reason,) = [r for r, n in after.dropped.items() if n > before.dropped.get(r, 0)]
    return reason


async def test_hostile_peer_is_contained_and_graylisted():
    hostile_identity, stranger = Identity.generate(), Identity.generate()
    host, pubsub, gossipsub = _plain_libp2p_peer(hostile_identity)
    async with trio.open_nursery() as nursery:
        a = await start_net(nursery, markets=("cpu", "gpu"), target_connections=1)
        b = await start_net(
            nursery, bootstrap=[a.addr], markets=("cpu", "gpu"), target_connections=1
        )
        await wait_until(lambda: b.net.peer_id in a.net.mesh_peers(CPU), MESH_TIMEOUT_S)
        async with (
            host.run([Multiaddr("/ip4/127.0.0.1/tcp/0")]),
            background_trio_service(pubsub),
            background_trio_service(gossipsub),
        ):
            await pubsub.wait_until_ready()
            for topic in (CPU, GPU, NODES):
                await pubsub.subscribe(topic)
            await host.connect(info_from_p2p_addr(Multiaddr(a.addr)))
            for topic in (CPU, GPU, NODES):
                await pubsub.wait_for_subscription(a.net.peer_id, topic, timeout=MESH_TIMEOUT_S)
                await pubsub.wait_for_mesh(a.net.peer_id, topic, timeout=MESH_TIMEOUT_S)

            # A valid offer from H is ordinary traffic: both honest nodes get it once.
            valid = signed_offer(hostile_identity, wall_clock_ms(), nonce=1)
            await pubsub.publish(CPU, valid.encode())
            await a.inbox.wait_for({valid.envelope_id})
            await b.inbox.wait_for({valid.envelope_id})

            now = wall_clock_ms()
            forged_signature = bytearray(valid.signature)
            forged_signature[5] ^= 0x01
            later = now + MAX_CLOCK_SKEW_MS + 60_000
            # (what, topic, payload, the drop reason A's validator must give unless graylisted)
            attacks: list[tuple[str, str, bytes, DropReason | None]] = [
                ("replay", CPU, valid.encode(), None),
                (
                    "expired",
                    CPU,
                    hostile_identity.sign_envelope(
                        resource_offer(
                            hostile_identity, nonce=2, created_at=now - 60_000, expires_at=now - 1
                        ),
                        now - 30_000,
                    ).encode(),
                    DropReason.EXPIRED,
                ),
                (
                    "future-dated",
                    CPU,
                    hostile_identity.sign_envelope(
                        resource_offer(hostile_identity, nonce=3, created_at=later), later
                    ).encode(),
                    DropReason.FUTURE_DATED,
                ),
                (
                    "forged signature",
                    CPU,
                    SignedEnvelope(
                        signer=valid.signer,
                        published_at=valid.published_at,
                        body=valid.body,
                        signature=bytes(forged_signature),
                    ).encode(),
                    DropReason.BAD_SIGNATURE,
                ),
                (
                    "signed by another key",
                    CPU,
                    signed_offer(stranger, now, nonce=4).encode(),
                    DropReason.SIGNER_NOT_SOURCE,
                ),
                ("garbage", CPU, b"\x00not an envelope" + os.urandom(64), DropReason.MALFORMED),
                ("oversized", CPU, os.urandom(MAX_MESSAGE_BYTES + 1), DropReason.OVERSIZED),
                (
                    "offer on the node topic",
                    NODES,
                    signed_offer(hostile_identity, now, nonce=5).encode(),
                    DropReason.WRONG_TOPIC,
                ),
                (
                    "cpu offer on gpu",
                    GPU,
                    signed_offer(hostile_identity, now, nonce=6).encode(),
                    DropReason.WRONG_TOPIC,
                ),
            ]
            outcomes = []
            hostile_id = str(host.get_id())
            for name, topic, data, _ in attacks:
                if a.net.peer_score(host.get_id()) < GRAYLIST_THRESHOLD:
                    break  # graylisted: A bans and disconnects it within a sweep (below)
                before = a.net.statistics()
                await pubsub.publish(topic, data)
                await wait_until(
                    lambda before=before: _handled(a) > _handled_in(before), DELIVERY_TIMEOUT_S
                )
                outcomes.append(_outcome(before, a.net.statistics()))
                assert _handled(a) == _handled_in(before) + 1, name

            assert outcomes[0] == "duplicate"
            # The first three invalid messages cost H at most 4.25 P4 counts: not enough.
            graylisted_from = (
                outcomes.index("graylisted") if "graylisted" in outcomes else len(outcomes)
            )
            assert graylisted_from >= 4
            for (name, _, _, reason), outcome in zip(attacks, outcomes, strict=False):
                if reason is not None and outcome != "graylisted":
                    assert outcome == reason.value, name
            assert set(outcomes[graylisted_from:]) <= {"graylisted"}
            assert a.net.peer_score(host.get_id()) < GRAYLIST_THRESHOLD
            stats = a.net.statistics()
            assert stats.reported_peers == 1
            # Future-dated only: an expired message is dropped, not held against its forwarder.
            assert stats.reports["high_tolerance"] == 1

            # A graylisted peer is banned: disconnected (out of every mesh) and refused.
            await wait_until(
                lambda: hostile_id not in {p.peer_id for p in a.net.peers()}, MESH_TIMEOUT_S
            )
            assert a.net.statistics().banned_peers == 1

            # Nothing but the one valid offer reached either honest node's event stream,
            # and A forwarded none of the rest: B has dropped nothing because it got nothing.
            assert [e.envelope_id for e in a.inbox.offers] == [valid.envelope_id]
            assert [e.envelope_id for e in b.inbox.offers] == [valid.envelope_id]
            assert b.net.statistics().dropped == {}

            # Honest traffic still flows both ways.
            from_a = signed_offer(a.identity, wall_clock_ms(), nonce=10)
            from_b = signed_offer(b.identity, wall_clock_ms(), nonce=11)
            await a.net.publish(from_a)
            await b.net.publish(from_b)
            for node in (a, b):
                await node.inbox.wait_for({from_a.envelope_id, from_b.envelope_id})

        pubsub.seen_messages.stop()
        nursery.cancel_scope.cancel()
