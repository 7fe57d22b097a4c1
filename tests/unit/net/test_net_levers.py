"""Each lever in lilypad_p2p.net._levers leans on py-libp2p internals: check them here, so a
library bump that moves them fails loudly instead of silently undoing the tuning."""

import functools
import inspect
import re
import threading
from collections import defaultdict
from importlib.metadata import version

import trio
import trio.testing
from hypothesis import example, given, settings
from hypothesis import strategies as st
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11, GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from libp2p.pubsub.rpc_queue import OutBoundQueueSize, RpcQueue
from libp2p.pubsub.score import PeerScorer, ScoreParams, TopicScoreParams
from libp2p.pubsub.utils import safe_bytes_from_hex

from lilypad_p2p.net import NetLimits
from lilypad_p2p.net._levers import (
    ContentKeyedMessageCache,
    ReportedScorer,
    ThreadlessSeenCache,
    TunedGossipSub,
    message_id,
    message_id_bytes,
)
from lilypad_p2p.net._params import OUTBOUND_QUEUE_SIZE
from lilypad_p2p.net._pubsub_levers import TunedPubsub


def test_library_version_is_the_one_the_levers_were_written_for():
    assert version("libp2p") == "0.8.1"


def test_overridden_library_methods_still_exist_with_the_same_signature():
    assert list(inspect.signature(Pubsub.continuously_read_stream).parameters) == [
        "self",
        "stream",
    ]
    assert list(inspect.signature(Pubsub.notify_subscriptions).parameters) == [
        "self",
        "publish_message",
    ]
    assert list(inspect.signature(GossipSub.send_rpc).parameters) == [
        "self",
        "peer_id",
        "rpc",
        "priority",
    ]
    assert list(inspect.signature(GossipSub._handle_dropped_rpc).parameters) == [
        "self",
        "peer_id",
        "rpc",
        "reason",
    ]
    for name in ("_is_msg_seen", "_is_subscribed_to_msg", "handle_subscription", "push_msg"):
        assert callable(getattr(Pubsub, name))
    assert callable(PeerScorer.on_invalid_message)


def test_the_library_still_calls_what_we_override():
    # Delivery goes through notify_subscriptions, and the stock mcache still keys by seqno.
    assert "self.notify_subscriptions(msg)" in inspect.getsource(Pubsub.push_msg)
    assert "on_invalid_message" in inspect.getsource(Pubsub.push_msg)
    assert "self.mcache.put(pubsub_msg)" in inspect.getsource(GossipSub.publish)
    assert "_pending_control" in inspect.getsource(GossipSub._piggyback_control_retry)
    # One registration task per new peer, started by the peer queue (lever 13 bounds them).
    assert "self.manager.run_task(self._handle_new_peer_with_retry, peer_id)" in (
        inspect.getsource(Pubsub.handle_peer_queue)
    )
    assert list(inspect.signature(Pubsub._handle_new_peer_with_retry).parameters) == [
        "self",
        "peer_id",
        "timeout",
    ]
    # The per-peer sending loop we replace (lever 14), and the queue's non-blocking pop.
    assert "self.manager.run_task(self.handle_sending_messages, peer_id, stream, queue)" in (
        inspect.getsource(Pubsub._handle_new_peer)
    )
    assert RpcQueue()._queue.pop() is None


def test_ihave_and_iwant_read_message_ids_through_ours():
    import libp2p.pubsub.gossipsub as library_gossipsub

    assert library_gossipsub.safe_bytes_from_hex is message_id_bytes
    for handler in (GossipSub.handle_ihave, GossipSub.handle_iwant):
        assert "= safe_bytes_from_hex(msg_id" in inspect.getsource(handler)


@given(st.binary(max_size=40) | st.text(max_size=40) | st.text("0123456789abcdefABCDEF")
       | st.text("0123456789abcdef").map(str.encode) | st.binary(max_size=8).map(bytearray))
def test_message_ids_read_as_the_library_reads_them(value):
    assert message_id_bytes(value) == safe_bytes_from_hex(value)


def test_outbound_queue_bound_is_still_a_mutable_private_field():
    queue = RpcQueue()
    assert queue._queue.max_size == OutBoundQueueSize < OUTBOUND_QUEUE_SIZE
    queue._queue.max_size = OUTBOUND_QUEUE_SIZE
    for _ in range(OutBoundQueueSize + 1):
        assert queue.push(rpc_pb2.RPC())


def _message(data: bytes, seqno: bytes) -> rpc_pb2.Message:
    return rpc_pb2.Message(data=data, seqno=seqno, from_id=b"peer", topicIDs=["/t"])


def test_message_cache_is_keyed_by_content():
    cache = ContentKeyedMessageCache(3, 5)
    first, copy = _message(b"offer", b"\x01"), _message(b"offer", b"\x02")
    cache.put(first)
    cache.put(copy)
    assert cache.get(message_id(first)) is first
    assert cache.window("/t") == [message_id(first)]


def test_seen_cache_expires_without_a_thread():
    now = [100.0]
    threads_before = threading.active_count()
    cache = ThreadlessSeenCache(120, clock=lambda: now[0])
    assert threading.active_count() == threads_before
    assert cache.add(b"a") is True
    assert cache.add(b"a") is False
    assert cache.has(b"a")
    now[0] += 121
    assert not cache.has(b"a")
    assert cache.length() == 0


def test_reported_scorer_ignores_library_p4_and_keeps_reports_across_reconnect():
    from libp2p.crypto.secp256k1 import create_new_key_pair
    from libp2p.peer.id import ID

    peer = ID.from_pubkey(create_new_key_pair().public_key)
    scorer = ReportedScorer(
        ScoreParams(p4_invalid_messages=TopicScoreParams(weight=10, cap=100, decay=0.5))
    )
    scorer.on_invalid_message(peer, "/t")
    assert scorer.score(peer, ["/t"]) == 0
    scorer.add_invalid_messages(peer, "/t", 4)
    assert scorer.score(peer, ["/t"]) == -40
    scorer.remove_peer(peer)
    assert scorer.score(peer, ["/t"]) == -40
    for _ in range(12):
        scorer.on_heartbeat()
    assert scorer.score(peer, ["/t"]) > -0.1


@functools.cache
def _a_peer():
    from libp2p.crypto.secp256k1 import create_new_key_pair
    from libp2p.peer.id import ID

    return ID.from_pubkey(create_new_key_pair().public_key)


@given(invalid=st.floats(0, 50), penalties=st.lists(st.floats(0, 40), min_size=5, max_size=5),
       mesh=st.floats(0, 100))
def test_a_peer_that_cannot_score_below_zero_is_never_graylisted(invalid, penalties, mesh):
    from lilypad_p2p.net._mesh import score_params

    peer, topic = _a_peer(), "/lilypad/1/nodes"
    scorer = ReportedScorer(score_params())
    if invalid:
        scorer.add_invalid_messages(peer, topic, invalid)
    scorer.time_in_mesh[peer][topic] = mesh
    for table, value in zip((scorer.behavior_penalty, scorer.graft_flood_penalties,
                             scorer.iwant_spam_penalties, scorer.ihave_spam_penalties,
                             scorer.equivocation_penalties), penalties, strict=True):
        if value:
            table[peer] = value
    if not scorer.may_score_below_zero(peer):
        assert scorer.score(peer, [topic]) >= 0
        assert not scorer.is_graylisted(peer, [topic])
    if scorer.score(peer, [topic]) < 0:
        assert scorer.may_score_below_zero(peer)


def test_a_scored_peer_with_nothing_against_it_is_no_suspect():
    from lilypad_p2p.net._mesh import score_params

    peer, topic = _a_peer(), "/lilypad/1/nodes"
    scorer = ReportedScorer(score_params())
    scorer.score(peer, [topic])
    scorer.on_heartbeat()
    scorer.score(peer, [topic])
    assert not scorer.may_score_below_zero(peer)
    scorer.add_invalid_messages(peer, topic, 1.0)
    assert scorer.may_score_below_zero(peer)


def test_the_library_score_has_the_parts_the_fast_path_knows():
    from lilypad_p2p.net._mesh import score_params

    source = inspect.getsource(PeerScorer.score)
    for part in ("behavior_penalty", "graft_flood_penalties", "iwant_spam_penalties",
                 "ihave_spam_penalties", "equivocation_penalties", "topic_score",
                 "app_specific_score_fn", "ip_colocation_penalty"):
        assert part in source
    ours = score_params()
    assert ours.p6_appl_slack_weight == ours.p7_ip_colocation_weight == 0
    assert ours.app_specific_score_fn is None


@functools.cache
def _peers(count: int):
    from libp2p.crypto.secp256k1 import create_new_key_pair
    from libp2p.peer.id import ID

    return [ID.from_pubkey(create_new_key_pair().public_key) for _ in range(count)]


def _whether_below_zero_is_possible(scorer: ReportedScorer, peer) -> bool:
    """The definition, summed afresh: any P4 count, or penalties above the free threshold."""
    if any(count > 0 for count in scorer.invalid_messages.get(peer, {}).values()):
        return True
    penalties = sum(getattr(scorer, table).get(peer, 0.0) for table in (
        "behavior_penalty", "graft_flood_penalties", "iwant_spam_penalties",
        "ihave_spam_penalties", "equivocation_penalties"))
    return penalties > scorer.params.p5_behavior_penalty_threshold


SCORER_STEPS = st.one_of(
    st.tuples(st.sampled_from(["penalize_behavior", "penalize_graft_flood",
                               "penalize_iwant_spam", "penalize_ihave_spam",
                               "penalize_equivocation"]),
              st.integers(0, 2), st.floats(0, 20)),
    st.tuples(st.just("report"), st.integers(0, 2), st.floats(0.001, 5)),
    st.tuples(st.sampled_from(["score", "remove_peer", "heartbeat"]), st.integers(0, 2),
              st.just(0.0)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(SCORER_STEPS, min_size=4, max_size=40))
@example([("report", 0, 0.001), ("heartbeat", 0, 0.0)])  # decays away at once
@example([("penalize_behavior", 1, 30.0), ("report", 1, 1.0), ("remove_peer", 1, 0.0)])
@example([("penalize_behavior", 2, 15.0), ("penalize_graft_flood", 2, 10.0),
          ("remove_peer", 2, 0.0)])  # leaving clears penalties, and with them suspicion
def test_the_suspects_are_exactly_the_peers_that_may_score_below_zero(steps):
    # `may_score_below_zero` answers from a set kept up to date on every change; here it is
    # checked against the definition after each step the library or we can take.
    from lilypad_p2p.net._mesh import score_params

    peers, topic = _peers(3), "/lilypad/1/nodes"
    scorer = ReportedScorer(score_params())
    for step, index, amount in steps:
        peer = peers[index]
        if step == "report":
            scorer.add_invalid_messages(peer, topic, amount)
        elif step == "score":
            scorer.score(peer, [topic])
        elif step == "remove_peer":
            scorer.remove_peer(peer)
        elif step == "heartbeat":
            scorer.on_heartbeat()
        else:
            getattr(scorer, step)(peer, amount)
        for each in peers:
            assert scorer.may_score_below_zero(each) == _whether_below_zero_is_possible(
                scorer, each)


def test_the_library_changes_penalties_only_by_item_so_our_tables_see_every_change():
    import libp2p.pubsub.score as library_score

    source = inspect.getsource(library_score)
    for table in ("behavior_penalty", "graft_flood_penalties", "iwant_spam_penalties",
                  "ihave_spam_penalties", "equivocation_penalties"):
        assert f"self.{table}: dict[ID, float] = defaultdict(float)" in source
        # Every other use indexes it, reads its keys or tests membership: no pop, update,
        # clear or setdefault, and no alias that could change it out of our sight.
        uses = re.findall(rf"(\S*\s?)self\.{table}(\S{{0,7}})", source)
        assert len(uses) > 5
        for before, after in uses:
            assert after.startswith(("[", ".keys()", ".get(", ":")) or before == "in ", (
                f"{table}: {before}...{after}")


def _pubsub_pair() -> tuple[TunedGossipSub, TunedPubsub]:
    from libp2p.crypto.secp256k1 import create_new_key_pair

    from lilypad_p2p.net._host import Muxer, build_host

    host = build_host(
        create_new_key_pair(), [], (Muxer.MPLEX,), target_connections=8, limits=NetLimits()
    )
    router = TunedGossipSub(protocols=[PROTOCOL_ID_V11], degree=6, degree_low=4, degree_high=12)
    pubsub = TunedPubsub(
        host,
        router,
        msg_id_constructor=message_id,
        on_delivered=lambda msg: None,
        on_malformed_rpc=lambda peer: None,
        is_graylisted=lambda peer: False,
        on_peer_failure=lambda peer, where, error: None,
    )
    return router, pubsub


def _sweeper_threads() -> int:
    return sum(
        "_background_cleanup" in repr(getattr(thread, "_target", None))
        for thread in threading.enumerate()
    )


def test_tuned_pubsub_replaces_the_threaded_seen_cache():
    before = _sweeper_threads()
    router, pubsub = _pubsub_pair()
    assert isinstance(pubsub.seen_messages, ThreadlessSeenCache)
    assert isinstance(router.mcache, ContentKeyedMessageCache)
    assert _sweeper_threads() == before


async def test_send_rpc_raises_the_queue_bound_strips_records_and_counts_drops():
    from libp2p.crypto.secp256k1 import create_new_key_pair
    from libp2p.peer.id import ID

    router, pubsub = _pubsub_pair()
    peer = ID.from_pubkey(create_new_key_pair().public_key)
    queue = RpcQueue()
    pubsub.peer_queues[peer] = queue
    rpc = rpc_pb2.RPC(publish=[_message(b"x", b"\x01")], senderRecord=b"record")
    for _ in range(OUTBOUND_QUEUE_SIZE + 3):
        router.send_rpc(peer, rpc)
    assert queue._queue.max_size == OUTBOUND_QUEUE_SIZE
    assert len(queue) == OUTBOUND_QUEUE_SIZE
    assert router.outbound_drops == 3
    assert not (await queue.pop()).senderRecord
    await trio.lowlevel.checkpoint()


def test_peer_record_is_built_from_host_get_addrs_which_we_cache():
    from libp2p.peer import peerstore

    assert "host.get_addrs()" in inspect.getsource(peerstore.env_to_send_in_RPC)


def test_cached_host_addrs_refresh_after_the_cache_period():
    from lilypad_p2p.net._levers import HOST_ADDRS_CACHE_S, cache_host_addrs

    class FakeHost:
        calls = 0

        def get_addrs(self):
            FakeHost.calls += 1
            return [f"/ip4/127.0.0.1/tcp/{FakeHost.calls}"]

    now = [0.0]
    host = FakeHost()
    cache_host_addrs(host, clock=lambda: now[0])
    assert host.get_addrs() == host.get_addrs() == ["/ip4/127.0.0.1/tcp/1"]
    now[0] += HOST_ADDRS_CACHE_S
    assert host.get_addrs() == ["/ip4/127.0.0.1/tcp/2"]


def _peers(count: int) -> list:
    from libp2p.crypto.secp256k1 import create_new_key_pair
    from libp2p.peer.id import ID

    return [ID.from_pubkey(create_new_key_pair().public_key) for _ in range(count)]


def test_library_mesh_heartbeat_still_prunes_without_backoff():
    # If this fails, py-libp2p backs off pruned peers itself: drop our mesh_heartbeat lever.
    assert "_add_back_off" not in inspect.getsource(GossipSub.mesh_heartbeat)


def test_pruned_mesh_peers_are_backed_off():
    router, pubsub = _pubsub_pair()
    topic, peers = "/t", _peers(router.degree_high + 2)
    pubsub.peer_topics[topic] = set(peers)
    for peer in peers:
        router.peer_protocol[peer] = PROTOCOL_ID_V11
    router.mesh[topic] = set(peers)
    _, pruned = router.mesh_heartbeat()
    assert len(pruned) == len(peers) - router.degree
    for peer in pruned:
        assert router._check_back_off(peer, topic)
    for peer in router.mesh[topic]:
        assert not router._check_back_off(peer, topic)


def test_own_messages_flood_while_the_mesh_is_thin_otherwise_use_the_mesh():
    router, pubsub = _pubsub_pair()
    topic, peers = "/t", _peers(8)
    pubsub.peer_topics[topic] = set(peers)
    for peer in peers:
        router.peer_protocol[peer] = PROTOCOL_ID_V11
    me = pubsub.my_id
    router.mesh[topic] = set(peers[: router.degree_low - 1])
    assert set(router._get_peers_to_send([topic], me, me)) == set(peers)
    forwarded = set(router._get_peers_to_send([topic], peers[0], peers[1]))
    assert forwarded == router.mesh[topic] - {peers[0], peers[1]}
    router.scorer = ReportedScorer(
        ScoreParams(
            p4_invalid_messages=TopicScoreParams(weight=10, cap=100, decay=0.9),
            publish_threshold=-60,
        )
    )
    router.scorer.add_invalid_messages(peers[7], topic, 10)
    assert peers[7] not in set(router._get_peers_to_send([topic], me, me))
    router.mesh[topic] = set(peers[: router.degree_low])
    assert set(router._get_peers_to_send([topic], me, me)) == router.mesh[topic]


def test_library_gossip_still_skips_backed_off_peers():
    # If this fails, py-libp2p gossips to backed-off peers itself: drop our gossip_heartbeat.
    source = inspect.getsource(GossipSub._handle_topic_heartbeat)
    assert "topic, gossip_count, current_peers, True" in source


def test_ihave_gossip_reaches_backed_off_peers_but_not_mesh_or_low_scores():
    from lilypad_p2p.net._levers import GOSSIP_LAZY_PEERS

    router, pubsub = _pubsub_pair()
    topic, peers = "/t", _peers(GOSSIP_LAZY_PEERS + 4)
    mesh, eligible, penalised = peers[:3], peers[3:-1], peers[-1]
    pubsub.peer_topics[topic] = set(peers)
    for peer in peers:
        router.peer_protocol[peer] = PROTOCOL_ID_V11
    router.mesh[topic] = set(mesh)
    for peer in [*eligible, penalised]:
        router._add_back_off(peer, topic, False)
    router.scorer = ReportedScorer(
        ScoreParams(
            p4_invalid_messages=TopicScoreParams(weight=10, cap=100, decay=0.9),
            gossip_threshold=-40,
        )
    )
    router.scorer.add_invalid_messages(penalised, topic, 5)
    message = rpc_pb2.Message(data=b"offer", seqno=b"\x01", from_id=b"peer", topicIDs=[topic])
    router.mcache.put(message)
    gossip = router.gossip_heartbeat()
    assert set(gossip) == set(eligible)  # exactly D_lazy eligible: all of them
    assert all(gossip[peer][topic] == [message_id(message)] for peer in gossip)


def test_library_heartbeat_still_grafts_opportunistically_through_our_hook():
    assert "_perform_opportunistic_grafting" in inspect.getsource(GossipSub.mesh_heartbeat)
    assert "_perform_opportunistic_grafting" in TunedGossipSub.__dict__


def test_opportunistic_grafting_only_every_60_ticks_and_only_above_the_median():
    from lilypad_p2p.net._levers import OPPORTUNISTIC_GRAFT_TICKS

    router, pubsub = _pubsub_pair()
    topic, peers = "/t", _peers(8)
    pubsub.peer_topics[topic] = set(peers)
    for peer in peers:
        router.peer_protocol[peer] = PROTOCOL_ID_V11
    router.scorer = ReportedScorer(
        ScoreParams(p4_invalid_messages=TopicScoreParams(weight=10, cap=100, decay=0.9))
    )
    router.mesh[topic] = set(peers[:3])
    grafts: dict = {}
    for _ in range(OPPORTUNISTIC_GRAFT_TICKS):
        assert router._perform_opportunistic_grafting(topic, defaultdict(list)) == 0
    # Honest scores are all 0: nobody is above the median, so nothing to gain.
    assert router._opportunistic_ticks[topic] == OPPORTUNISTIC_GRAFT_TICKS
    for peer in peers[:2]:
        router.scorer.add_invalid_messages(peer, topic, 4)  # two bad mesh peers: median -40
    for _ in range(OPPORTUNISTIC_GRAFT_TICKS - 1):
        assert router._perform_opportunistic_grafting(topic, defaultdict(list)) == 0
    grafts = defaultdict(list)
    assert router._perform_opportunistic_grafting(topic, grafts) == 2
    assert set(grafts) <= set(peers[3:])
    assert set(grafts) <= router.mesh[topic]


async def test_control_messages_carry_no_peer_record():
    router, pubsub = _pubsub_pair()
    (peer,) = _peers(1)
    queue = RpcQueue()
    pubsub.peer_queues[peer] = queue
    await router.emit_control_message(
        rpc_pb2.ControlMessage(graft=[rpc_pb2.ControlGraft(topicID="/t")]), peer
    )
    sent = await queue.pop()
    assert not sent.senderRecord
    assert sent.control.graft[0].topicID == "/t"


class _RecordingStream:
    def __init__(self, fail: bool = False) -> None:
        self.writes: list[bytes] = []
        self.fail = fail

    async def write(self, data: bytes) -> None:
        if self.fail:
            from libp2p.network.stream.exceptions import StreamReset

            raise StreamReset("gone")
        self.writes.append(data)


def _publish_rpc(data: bytes) -> rpc_pb2.RPC:
    return rpc_pb2.RPC(publish=[rpc_pb2.Message(data=data, topicIDs=["/t"])])


def _read_rpcs(blob: bytes) -> list[bytes]:
    found, index = [], 0
    while index < len(blob):
        length, shift = 0, 0
        while True:
            byte = blob[index]
            index += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        rpc = rpc_pb2.RPC()
        rpc.ParseFromString(blob[index:index + length])
        found.append(rpc.publish[0].data)
        index += length
    return found


async def test_queued_rpcs_leave_in_one_write_in_order_and_a_lone_one_alone():
    _, pubsub = _pubsub_pair()
    peer = _a_peer()
    queue, stream = RpcQueue(), _RecordingStream()
    for data in (b"one", b"two", b"three"):
        queue.push(_publish_rpc(data))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pubsub.handle_sending_messages, peer, stream, queue)
        await trio.testing.wait_all_tasks_blocked()
        queue.push(_publish_rpc(b"four"))
        await trio.testing.wait_all_tasks_blocked()
        queue.close()
    assert [_read_rpcs(write) for write in stream.writes] == [[b"one", b"two", b"three"],
                                                              [b"four"]]
    assert pubsub.rpcs_batched == 2


async def test_a_broken_stream_ends_the_sending_loop_and_drops_the_peer():
    _, pubsub = _pubsub_pair()
    peer = _a_peer()
    dropped = []
    pubsub._handle_dead_peer = dropped.append  # type: ignore[method-assign]
    queue = RpcQueue()
    queue.push(_publish_rpc(b"one"))
    with trio.fail_after(5):
        await pubsub.handle_sending_messages(peer, _RecordingStream(fail=True), queue)
    assert dropped == [peer]
