"""The forwarding levers (15-20 in `net/_levers.py`): each does what the library does, for what
we use, with less work per message. Where a lever re-states a library method, the method's
source is pinned, so a py-libp2p change makes someone read it again."""

from collections import defaultdict
from unittest.mock import patch

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st
from libp2p.crypto.secp256k1 import create_new_key_pair
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11, GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub, ValidationCache, ValidationResult
from libp2p.pubsub.score import PeerScorer
from library_source import source_digest

from lilypad_p2p.net import NetLimits
from lilypad_p2p.net._host import Muxer, build_host
from lilypad_p2p.net._levers import (
    LruValidationCache,
    ReportedScorer,
    TunedGossipSub,
    message_id,
)
from lilypad_p2p.net._mesh import score_params
from lilypad_p2p.net._pubsub_levers import TunedPubsub

TOPIC = "/lilypad/1/market/cpu"
PEERS = [ID.from_pubkey(create_new_key_pair().public_key) for _ in range(10)]

# The library methods we re-state; a new py-libp2p changes them and fails here.
RESTATED = {
    Pubsub.push_msg: "1531483ab4d7",
    GossipSub.publish: "b978282af462",
}


@pytest.mark.parametrize("method", list(RESTATED), ids=lambda m: m.__qualname__)
def test_the_library_methods_we_restate_are_the_ones_we_read(method):
    assert source_digest(method) == RESTATED[method]


def _pair(*, check_source: bool = False) -> tuple[TunedGossipSub, TunedPubsub, list]:
    host = build_host(
        create_new_key_pair(), [], (Muxer.YAMUX,), target_connections=8, limits=NetLimits()
    )
    router = TunedGossipSub(protocols=[PROTOCOL_ID_V11], degree=4, degree_low=3, degree_high=6)
    delivered: list[rpc_pb2.Message] = []
    pubsub = TunedPubsub(
        host,
        router,
        msg_id_constructor=message_id,
        strict_signing=True,
        on_delivered=delivered.append,
        on_malformed_rpc=lambda peer: None,
        is_graylisted=lambda peer: False,
        on_peer_failure=lambda peer, where, error: None,
        validators_check_source=check_source,
    )
    return router, pubsub, delivered


def _subscribe(pubsub: TunedPubsub, topic: str) -> None:
    pubsub.subscribed_topics_receive[topic] = None  # type: ignore[assignment]  # only the key


def _unsigned(data: bytes, topic: str = TOPIC, origin: ID = PEERS[0]) -> rpc_pb2.Message:
    return rpc_pb2.Message(data=data, seqno=b"\x01", from_id=origin.to_bytes(), topicIDs=[topic])


async def _push(pubsub: TunedPubsub, msg: rpc_pb2.Message) -> list[ID]:
    forwarded: list[ID] = []

    async def publish(forwarder: ID, message: rpc_pb2.Message) -> None:
        forwarded.append(forwarder)

    pubsub.router.publish = publish  # type: ignore[method-assign]
    _subscribe(pubsub, TOPIC)
    await pubsub.push_msg(PEERS[1], msg)
    return forwarded


async def test_a_validated_topic_skips_the_libp2p_signature_only_when_the_validator_checks_source():
    seen = []
    for check_source in (True, False):
        _, pubsub, delivered = _pair(check_source=check_source)
        pubsub.set_topic_validator(TOPIC, lambda peer, msg: seen.append(msg) or True, False)
        forwarded = await _push(pubsub, _unsigned(b"offer"))
        # Unsigned: only a pubsub told that its validators check the source takes it.
        assert (len(delivered), forwarded) == ((1, [PEERS[1]]) if check_source else (0, []))
    assert len(seen) == 1


async def test_a_topic_without_our_validator_still_needs_the_libp2p_signature():
    _, pubsub, delivered = _pair(check_source=True)
    assert await _push(pubsub, _unsigned(b"offer")) == []
    assert delivered == []


async def test_an_invalid_message_is_not_marked_seen_nor_forwarded():
    _, pubsub, delivered = _pair(check_source=True)
    pubsub.set_topic_validator(TOPIC, lambda peer, msg: msg.data != b"bad", False)
    assert await _push(pubsub, _unsigned(b"bad")) == []
    assert not pubsub._is_msg_seen(_unsigned(b"bad"))
    assert await _push(pubsub, _unsigned(b"good")) == [PEERS[1]]
    assert pubsub._is_msg_seen(_unsigned(b"good"))
    assert await _push(pubsub, _unsigned(b"good")) == []  # a copy: seen
    assert [msg.data for msg in delivered] == [b"good"]


async def test_sync_validated_messages_are_pushed_by_the_reader_async_ones_in_a_task():
    _, pubsub, _ = _pair(check_source=True)
    _subscribe(pubsub, TOPIC)
    _subscribe(pubsub, "/async")
    pubsub.set_topic_validator(TOPIC, lambda peer, msg: True, False)

    async def slow(peer: ID, msg: rpc_pb2.Message) -> bool:
        return True

    pubsub.set_topic_validator("/async", slow, True)
    started = []

    class _Manager:
        is_running = True

        def run_task(self, fn, *args) -> None:
            started.append(args)

    pubsub._manager = _Manager()
    here = pubsub._push_unseen(PEERS[1], [_unsigned(b"a"), _unsigned(b"b", "/async")])
    assert [msg.data for msg in here] == [b"a"]
    assert [msg.data for _, msg in started] == [b"b"]


def _router_state(mesh: set[int], topic_peers: set[int], suspects: set[int]) -> TunedGossipSub:
    router, pubsub, _ = _pair()
    router.scorer = ReportedScorer(score_params())
    pubsub.peer_topics[TOPIC] = {PEERS[i] for i in topic_peers | mesh}
    router.mesh[TOPIC] = {PEERS[i] for i in mesh}
    for index in range(len(PEERS)):
        router.peer_protocol[PEERS[index]] = PROTOCOL_ID_V11
    for index in suspects:
        router.scorer.add_invalid_messages(PEERS[index], TOPIC, 10.0)
    return router


indices = st.sets(st.integers(0, len(PEERS) - 1))


@settings(max_examples=60, deadline=None)
@given(mesh=indices, topic_peers=indices, suspects=indices, forwarder=st.integers(0, 9),
       origin=st.integers(0, 9))
def test_forwarding_picks_the_peers_the_library_picks(mesh, topic_peers, suspects, forwarder,
                                                      origin):
    router = _router_state(mesh, topic_peers, suspects)
    args = ([TOPIC], PEERS[forwarder], PEERS[origin], b"id")
    assert set(router._get_peers_to_send(*args)) == set(
        GossipSub._get_peers_to_send(router, *args)
    )


@settings(max_examples=60, deadline=None)
@given(invalid=st.floats(0, 20), penalty=st.floats(0, 60))
def test_the_score_gates_answer_as_the_library_does(invalid, penalty):
    scorer = ReportedScorer(score_params())
    peer = PEERS[0]
    if invalid:
        scorer.add_invalid_messages(peer, TOPIC, invalid)
    if penalty:
        scorer.behavior_penalty[peer] = penalty
    for gate in ("allow_publish", "allow_gossip", "is_graylisted"):
        for topics in ([TOPIC], [], [TOPIC, "/other"]):
            ours = getattr(scorer, gate)(peer, topics)
            assert ours == getattr(PeerScorer, gate)(scorer, peer, topics), (gate, topics)


def test_the_gates_shortcut_needs_every_threshold_below_zero():
    params = score_params()
    assert max(params.gossip_threshold, params.publish_threshold, params.graylist_threshold) < 0
    # ...and every topic term that is not a penalty only adds (`may_score_below_zero`).
    for term in (params.p1_time_in_mesh, params.p2_first_message_deliveries,
                 params.p3_mesh_message_deliveries):
        assert term.weight >= 0


async def test_forwarding_sends_as_the_library_and_queues_only_for_unidentified_peers():
    identified_elsewhere, unidentified = PEERS[8], PEERS[9]
    sent: dict[str, list[ID]] = defaultdict(list)
    pending = {}
    for name, publish in (("ours", TunedGossipSub.publish), ("library", GossipSub.publish)):
        router = _router_state({2, 3, 4, 5}, {6, 7}, {5})
        pubsub = router.pubsub
        for peer in PEERS[2:9]:
            pubsub.peers[peer] = object()
        pubsub.peers[unidentified] = object()
        pubsub.peer_topics[TOPIC].add(unidentified)
        del router.peer_protocol[unidentified]
        pubsub.peer_topics[TOPIC].discard(identified_elsewhere)
        router.send_rpc = lambda peer, rpc, priority=False, name=name: sent[name].append(peer)
        await publish(router, PEERS[2], _unsigned(b"offer", origin=PEERS[3]))
        pending[name] = set(router._pending_messages)
        await trio.lowlevel.checkpoint()
    assert set(sent["ours"]) == set(sent["library"]) == {PEERS[4]}
    assert pending["library"] == {unidentified, identified_elsewhere}
    assert pending["ours"] == {unidentified}


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["get", "put", "remove", "sweep", "wait"]), st.integers(0, 6)),
        max_size=60,
    )
)
def test_the_validation_cache_answers_as_the_library_cache_does(steps):
    now = [1000.0]
    with patch("time.time", lambda: now[0]):  # both caches stamp and expire by time.time()
        ours, library = LruValidationCache(ttl=10, max_size=4), ValidationCache(10, 4)
        for step, key in steps:
            msg_id = b"id%d" % key
            if step == "get":
                assert ours.get(msg_id) == library.get(msg_id)
            elif step == "put":
                result = ValidationResult(is_valid=key % 2 == 0, timestamp=now[0])
                ours.put(msg_id, result)
                library.put(msg_id, result)
            elif step == "remove":
                ours._remove(msg_id)
                library._remove(msg_id)
            elif step == "sweep":
                ours.clear_expired()
                library.clear_expired()
            else:
                now[0] += key * 2
            assert list(ours.cache) == library.access_order
            assert dict(ours.cache) == library.cache


def test_tuned_pubsub_uses_the_constant_time_validation_cache():
    _, pubsub, _ = _pair()
    assert isinstance(pubsub.validation_cache, LruValidationCache)
    assert pubsub.validation_cache.max_size == 1000
