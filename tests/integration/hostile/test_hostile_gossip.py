"""Oversized, malformed and forged gossip from plain py-libp2p peers against a node process."""

import contextlib
import os

import pytest
import trio
from hostile_kit import (
    assert_node_healthy,
    connected_peer_ids,
    gossip_attacker,
    gossip_statistics,
    node_call,
    publish_direct,
    wait_offender_gone,
)
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11
from libp2p.pubsub.pb import rpc_pb2
from libp2p.utils.varint import encode_uvarint

from lilypad_p2p.identity import Identity
from lilypad_p2p.net import NODES_TOPIC, MarketTopic, wall_clock_ms
from lilypad_p2p.testing.offers import make_resource_offer
from lilypad_p2p.wire import SignedEnvelope

pytestmark = [pytest.mark.net, pytest.mark.slow]

CPU, NODES = str(MarketTopic("cpu")), str(NODES_TOPIC)


def _offer(owner: Identity, now_ms: int, nonce: int) -> SignedEnvelope:
    body = make_resource_offer(provider=owner.address, created_at=now_ms,
                               expires_at=now_ms + 600_000, nonce=nonce)
    return owner.sign_envelope(body, now_ms)


async def test_one_rpc_over_the_limit_costs_the_sender_its_connection_not_the_node(public_node):
    async with gossip_attacker(public_node, (CPU, NODES)) as (host, _, target):
        offender = str(host.get_id())
        stream = await host.new_stream(target, [PROTOCOL_ID_V11])
        body = b"\x0a" + os.urandom(2 * 1024 * 1024)  # one 2 MiB RPC: the limit is 1 MiB
        # The node resets the stream while we are still writing.
        with contextlib.suppress(Exception):
            await stream.write(encode_uvarint(len(body)) + body)
        await wait_offender_gone(public_node, offender)
    await assert_node_healthy(public_node, offender=offender)


async def test_unparsable_rpc_gets_the_sender_disconnected(public_node):
    async with gossip_attacker(public_node, (CPU,)) as (host, _, target):
        offender = str(host.get_id())
        stream = await host.new_stream(target, [PROTOCOL_ID_V11])
        await stream.write(encode_uvarint(3) + b"\x0f\xff\xff")
        await wait_offender_gone(public_node, offender)
    await assert_node_healthy(public_node, offender=offender)


async def test_forged_gossip_gets_the_sender_banned_and_refused(public_node):
    attacker, stranger = Identity.generate(), Identity.generate()
    async with gossip_attacker(public_node, (CPU, NODES), attacker) as (host, pubsub, target):
        offender = str(host.get_id())
        await pubsub.wait_for_mesh(target, CPU, timeout=30)
        before = (await gossip_statistics(public_node))["connections_refused"].get("banned", 0)
        now = wall_clock_ms()
        valid = _offer(attacker, now, 1)
        forged = SignedEnvelope(signer=valid.signer, published_at=valid.published_at,
                                body=valid.body, signature=bytes(65))
        payloads = [
            forged.encode(),
            _offer(stranger, now, 2).encode(),  # signed by a key that is not the sender's
            b"\x00not an envelope" + os.urandom(32),
            _offer(stranger, now, 3).encode(),
        ]
        for payload in payloads:  # one RPC each: the node handles an RPC's first few only
            try:
                await publish_direct(host, target, CPU, [payload])
            except Exception:  # already banned and disconnected: the attack is over
                break
            await trio.sleep(0.2)
        # Below the graylist threshold: the enforcer's next sweep bans and disconnects it.
        await wait_offender_gone(public_node, offender)
        stats = await gossip_statistics(public_node)
        assert stats["banned_peers"] >= 1
        assert stats["reported_peers"] >= 1
        # While banned, a new connection from the same key is closed at once.
        # The node closes the connection during or right after the upgrade.
        for peer in list(host.get_network().get_connections_map()):
            await host.disconnect(peer)
        with trio.move_on_after(5), contextlib.suppress(Exception):
            await host.connect(host.get_peerstore().peer_info(target))
        await trio.sleep(0.5)
        assert offender not in await connected_peer_ids(public_node)
        stats = await gossip_statistics(public_node)
        assert stats["connections_refused"].get("banned", 0) > before
    await assert_node_healthy(public_node, offender=offender)


def _unsigned_rpc(from_peer: bytes, topic: str, payload: bytes) -> bytes:
    # Built from the pubsub spec: a message naming `from_peer` as its source, with no libp2p
    # signature or key (a node that verified it would drop it before its validator).
    rpc = rpc_pb2.RPC(publish=[rpc_pb2.Message(data=payload, topicIDs=[topic],
                                               from_id=from_peer, seqno=os.urandom(8))])
    body = rpc.SerializeToString()
    return encode_uvarint(len(body)) + body


async def test_a_message_claiming_another_source_is_judged_by_its_envelope(public_node):
    """The node does not verify a received message's libp2p signature (WIRE §3): the envelope
    must be signed by the `from` peer's key. Claiming a stranger as the source of one's own
    envelope is graded against the sender; a stranger's genuine offer passed on unsigned is
    only that offer, delivered once."""
    attacker, stranger = Identity.generate(), Identity.generate()
    stranger_peer = stranger.peer_id.to_bytes()
    async with gossip_attacker(public_node, (CPU, NODES), attacker) as (host, pubsub, target):
        await pubsub.wait_for_mesh(target, CPU, timeout=30)
        before = await gossip_statistics(public_node)
        now = wall_clock_ms()
        stream = await host.new_stream(target, [PROTOCOL_ID_V11])
        genuine = _offer(stranger, now, 1).encode()
        await stream.write(_unsigned_rpc(stranger_peer, CPU, genuine))
        await stream.write(_unsigned_rpc(stranger_peer, CPU, genuine))  # again: a copy
        await stream.write(_unsigned_rpc(stranger_peer, CPU, _offer(attacker, now, 2).encode()))

        def grown(stats: dict, table: str, key: str) -> int:
            return stats[table].get(key, 0) - before[table].get(key, 0)

        with trio.fail_after(15):
            while not grown(stats := await gossip_statistics(public_node), "dropped",
                            "signer_not_source"):
                await trio.sleep(0.2)
        assert grown(stats, "dropped", "signer_not_source") == 1
        assert grown(stats, "dropped", "replayed") == 0  # the copy was seen, not judged
        assert grown(stats, "reports", "low_tolerance") == 1
        offers = await node_call(public_node, "offers")
        assert stranger.address.lower() in {
            offer["owner"].lower() for offer in offers  # type: ignore[union-attr]
        }
        assert attacker.address.lower() not in {
            offer["owner"].lower() for offer in offers  # type: ignore[union-attr]
        }
    await assert_node_healthy(public_node)
