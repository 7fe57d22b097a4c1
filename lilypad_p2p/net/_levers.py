"""Our changes to py-libp2p 0.8.1's Pubsub and GossipSub, each small, measured and documented.

Every lever here touches members the library does not promise to keep (`_queue`,
`_pending_control`, `continuously_read_stream`'s body, `seen_messages`, `mcache`), which is why
`libp2p` is pinned exactly and `tests/unit/net/test_net_levers.py` checks each one against the
installed library: a version bump that moves them fails that test instead of silently undoing
the tuning. Figures: /work/shared/notes/libp2p.md ("Cutting GossipSub CPU") and
benchmarks/RESULTS.md ("Gossip network").

The levers:
1. `message_id`: content-addressed message IDs (sha256 of the payload). Duplicates of one
   envelope are one message, whoever wraps them.
2. `ContentKeyedMessageCache`: the stock cache keys messages by sender+seqno while IHAVE/IWANT
   and the seen cache use the pubsub message ID, so every IHAVE looked unseen and cost an IWANT
   plus a full resend. Keyed by `message_id`, gossip only fetches what is really missing.
3. `TunedGossipSub.send_rpc`: drops the signed peer record the library attaches to every RPC
   (the stream's first hello still carries one; receivers verify each one they get), enqueues a
   plain publish RPC without the per-peer copy and split, raises the outbound queue bound from
   32 to `OUTBOUND_QUEUE_SIZE` (bursts were dropped), and counts drops. `emit_control_message`
   does not build the record in the first place (3 % of CPU at 50 nodes).
4. `TunedPubsub.continuously_read_stream`: reads each inbound stream through a buffer (the
   library reads every length prefix with `read(1)` calls through muxer locks), does not spawn a
   push task for a copy it has already seen, ignores messages from graylisted peers (the spec's
   graylist; the library only stops sending to them) and reports unparsable RPCs.
   `TunedPubsub._teardown_if_connected`: the library's blacklist teardown awaits a stream reset
   and then `del self.peers[peer]`; when the dead-peer cleanup removed the peer meanwhile (an
   oversized RPC triggers both), the `KeyError` ended the Pubsub service and the node. It also
   left the peer's send queue and router state behind. Ours runs the dead-peer cleanup, which is
   idempotent. Every per-peer task of the service is contained (`_containment`).
   `TunedPubsub._judge_gated`: messages from peers below the publish threshold are validated
   (and graded) instead of dropped unseen, so penalties reach the graylist.
5. `ThreadlessSeenCache`: the stock seen cache starts an OS thread per Pubsub that nobody
   stops; this one sweeps itself when touched.
6. `ReportedScorer`: the library adds one P4 count per failed validation; we add graded counts
   through `report_peer` instead, so the penalty follows what the peer did. `may_score_below_zero`
   lets the graylist check skip scoring peers with nothing against them.
7. `cache_host_addrs`: GossipSub builds the signed peer record for every publish, control
   message and IWANT reply (lever 3 then drops it) from `host.get_addrs()`, which rebuilds
   multiaddrs on each call: 7 % of a node's CPU in the profile. Our listen addresses change only
   when we start listening, so the answer is cached for `HOST_ADDRS_CACHE_S`.
8. `TunedGossipSub.mesh_heartbeat`: the library prunes an oversized mesh without backing off
   from the pruned peers (the spec says it must), so the next heartbeat may GRAFT them again;
   they see a "GRAFT flood", penalise us and PRUNE back. At 50 nodes that flapping cost 6-12 %
   of deliveries: penalised honest peers fell below the gossip threshold. We add the backoff.
9. `TunedGossipSub._get_peers_to_send`: while our mesh for a topic is below D_low, our own
   messages go to every peer in the topic whose score allows it (go-libp2p floods its own
   messages always; we only do when the mesh is thin, which costs less CPU): a node whose mesh
   is momentarily empty (everyone just pruned it) still gets its offer out.
10. `TunedGossipSub.gossip_heartbeat`: the library skips peers in PRUNE backoff when it picks
   whom to send IHAVE gossip. The spec (and go-libp2p) do not: backoff only forbids re-GRAFTing.
   A node pruned by all of its busy peers at 50 nodes heard nothing for the 60 s backoff and
   missed ~40 % of offers; with IHAVE it fetches them by IWANT one heartbeat later.
11. `GuardedMplex.read_message`: a frame that fails Noise authentication (or any other error the
   library does not expect while reading) escaped Mplex's read loop and cancelled the whole
   Swarm, stopping the node: one peer's corrupt bytes were a remote kill switch (seen once in a
   50-node run). Such errors now end that one connection, like a clean EOF.
   `GuardedMplex` streams are also full duplex: the library's `MplexStream` takes one
   read/write lock (`rw_lock`) for both directions, so a `write` waits until a pending `read` on
   the same stream returns. A circuit relay reads and writes each of its two streams at once
   (`CircuitV2Protocol._relay_data`, one task per direction), so the relay's first write towards
   a peer that is itself waiting to read deadlocked: relayed connections stalled in multistream
   negotiation and the inbound upgrade timed out (the "relays need Yamux" limitation; upstream
   py-libp2p #694 reports such a relay hang, and #639 had proposed separate read and write locks).
   Reads and writes now lock separately, as in go-mplex and in the library's own Yamux.
12. `TunedGossipSub._perform_opportunistic_grafting`: the library runs it on every heartbeat and
   grafts two peers whenever their score is at least the mesh median - always true when honest
   scores are all 0 - so every mesh grew by two per second and was pruned back, a permanent
   GRAFT/PRUNE churn that isolated nodes and cost CPU. We follow the spec: every
   `OPPORTUNISTIC_GRAFT_TICKS` heartbeats, graft up to two peers scoring *above* the median.
13. `TunedPubsub._handle_new_peer_with_retry`: the library starts one pubsub-stream
   registration task per new connection and retries it while the peer stays connected, so
   connection churn at 20/s piled up its manager's 1,000-task limit and ended the node (soak,
   RESULTS.md "Hostile peers"). Ours runs one per peer, at most `MAX_PENDING_REGISTRATIONS`,
   each bounded by `PEER_REGISTRATION_TIMEOUT_S`.
14. `TunedPubsub.handle_sending_messages`: the library writes one RPC per write; ours writes
   all that is queued for the peer at once (up to `MAX_SEND_BATCH_BYTES`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import statistics
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

import trio
from google.protobuf.message import DecodeError
from libp2p.abc import IHost, INetStream
from libp2p.exceptions import ParseError
from libp2p.io.abc import Reader
from libp2p.io.exceptions import IncompleteReadError, IOException, MessageTooLarge
from libp2p.network.connection.exceptions import RawConnError
from libp2p.network.stream.exceptions import StreamClosed, StreamEOF, StreamError, StreamReset
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.mcache import CacheEntry, MessageCache
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from libp2p.pubsub.rpc_queue import RpcQueue
from libp2p.pubsub.score import PeerScorer
from libp2p.pubsub.utils import maybe_consume_signed_record
from libp2p.stream_muxer.mplex.datastructures import StreamID
from libp2p.stream_muxer.mplex.exceptions import MplexUnavailable
from libp2p.stream_muxer.mplex.mplex import Mplex
from libp2p.stream_muxer.mplex.mplex_stream import MplexStream
from libp2p.utils.varint import encode_uvarint, read_varint_prefixed_bytes_limited
from multiaddr import Multiaddr

from lilypad_p2p.net._containment import OnFailure, contain_service_tasks, reset_quietly
from lilypad_p2p.net._mplex_frames import use_large_frames
from lilypad_p2p.net._params import OUTBOUND_QUEUE_SIZE

logger = logging.getLogger(__name__)

MESSAGE_ID_BYTES = 20
# Bytes pulled from the muxer per read on inbound pubsub streams.
READ_CHUNK_BYTES = 64 * 1024
# How often the seen cache sweeps expired IDs (it sweeps when touched, at most this often).
SEEN_SWEEP_INTERVAL_S = 10.0
# IHAVE gossip per heartbeat goes to max(D_lazy, factor * eligible non-mesh peers). With the
# spec's 6 and 0.25 every node sends ~6 IHAVE RPCs a second (one Noise frame each) whether or
# not anyone missed anything; 3 and 0.1 measured 6.9 -> 6.3 ms CPU per delivery at 50 nodes with
# delivery still 100 % (our own messages already flood to every topic peer).
GOSSIP_LAZY_PEERS = 3
GOSSIP_FACTOR = 0.1
# Opportunistic grafting (spec defaults): how often, and how many peers at most.
OPPORTUNISTIC_GRAFT_TICKS = 60
OPPORTUNISTIC_GRAFT_PEERS = 2
# How long `host.get_addrs()` answers from cache (identify-observed addresses may lag this much).
HOST_ADDRS_CACHE_S = 5.0
# Pubsub stream registrations with new peers in flight, and how long one may take in all.
MAX_PENDING_REGISTRATIONS = 256
PEER_REGISTRATION_TIMEOUT_S = 60.0
# A write to a peer's pubsub stream takes queued RPCs up to this many bytes (one Noise frame).
MAX_SEND_BATCH_BYTES = 32 * 1024
# P4 counts below this are forgotten (they no longer move a score measurably).
_NEGLIGIBLE_INVALID_COUNT = 0.01


def _length_prefixed(rpc: rpc_pb2.RPC) -> bytes:
    data = rpc.SerializeToString()
    return encode_uvarint(len(data)) + data


def message_id(msg: rpc_pb2.Message) -> bytes:
    """Content-addressed pubsub message ID: the first 20 bytes of sha256(payload)."""
    return hashlib.sha256(msg.data).digest()[:MESSAGE_ID_BYTES]


class ContentKeyedMessageCache(MessageCache):
    """The gossip message cache, keyed by `message_id` like IHAVE/IWANT and the seen cache."""

    def put(self, msg: rpc_pb2.Message) -> None:
        mid = message_id(msg)
        if mid in self.msgs:
            return
        self.msgs[mid] = msg
        self.history[0].append(CacheEntry(mid, msg.topicIDs))


class ThreadlessSeenCache:
    """Drop-in for py-libp2p's `LastSeenCache` (`add`/`has`/`length`/`stop`) without a thread.

    Expiry runs on the monotonic clock; expired IDs are swept when the cache is touched.
    """

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl_s
        self._clock = clock
        self.cache: dict[bytes, float] = {}
        self._next_sweep = clock() + SEEN_SWEEP_INTERVAL_S

    def _maybe_sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + SEEN_SWEEP_INTERVAL_S
        expired = [key for key, expiry in self.cache.items() if expiry < now]
        for key in expired:
            del self.cache[key]

    def add(self, key: bytes) -> bool:
        now = self._clock()
        self._maybe_sweep(now)
        is_new = key not in self.cache
        self.cache[key] = now + self.ttl
        return is_new

    def has(self, key: bytes) -> bool:
        now = self._clock()
        self._maybe_sweep(now)
        expiry = self.cache.get(key)
        return expiry is not None and expiry >= now

    def length(self) -> int:
        return len(self.cache)

    def stop(self) -> None:
        """Nothing to stop: there is no thread."""


class ReportedScorer(PeerScorer):
    """A `PeerScorer` whose P4 (invalid messages) is fed only by graded `report_peer` calls."""

    def on_invalid_message(self, peer: ID, topic: str) -> None:
        """Ignored: the library calls this for every failed validation with weight 1."""

    def add_invalid_messages(self, peer: ID, topic: str, count: float) -> None:
        """Add `count` P4 invalid-message counts for `peer` on `topic`."""
        self.invalid_messages[peer][topic] += count

    def remove_peer(self, peer: ID) -> None:
        """Forget a disconnected peer, except its P4 counts: reconnecting must not launder them.

        The kept counts still decay every heartbeat and are dropped once negligible.
        """
        kept = self.invalid_messages.pop(peer, None)
        super().remove_peer(peer)
        if kept is not None and max(kept.values(), default=0.0) >= _NEGLIGIBLE_INVALID_COUNT:
            self.invalid_messages[peer] = kept

    def may_score_below_zero(self, peer: ID) -> bool:
        """False when `peer` cannot score below zero, so cannot be graylisted: no P4 counts and
        behaviour penalties within the free threshold (P1-P3 only add; our `score_params`
        leave P6 and P7 unweighted). A dictionary lookup or two instead of a score, for the
        ban sweep and the check on every inbound RPC. Zero counts do not count: scoring a peer
        leaves them behind (the library reads a defaultdict)."""
        if any(count > 0 for count in self.invalid_messages.get(peer, {}).values()):
            return True
        penalties = (self.behavior_penalty, self.graft_flood_penalties, self.iwant_spam_penalties,
                     self.ihave_spam_penalties, self.equivocation_penalties)
        total = sum(penalty.get(peer, 0.0) for penalty in penalties)
        return total > self.params.p5_behavior_penalty_threshold

    def on_heartbeat(self, dt_seconds: float = 1.0) -> None:
        super().on_heartbeat(dt_seconds)
        for peer in [
            peer
            for peer, counts in self.invalid_messages.items()
            if max(counts.values(), default=0.0) < _NEGLIGIBLE_INVALID_COUNT
        ]:
            del self.invalid_messages[peer]


def cache_host_addrs(host: IHost, clock: Callable[[], float] = time.monotonic) -> None:
    """Make `host.get_addrs()` answer from a cache refreshed every `HOST_ADDRS_CACHE_S`."""
    uncached = host.get_addrs
    cached: list[Multiaddr] = []
    refresh_at = [float("-inf")]

    def get_addrs() -> list[Multiaddr]:
        now = clock()
        if now >= refresh_at[0]:
            cached[:] = uncached()
            refresh_at[0] = now + HOST_ADDRS_CACHE_S
        return list(cached)

    host.get_addrs = get_addrs  # type: ignore[method-assign]  # the override is the point


class _BufferedReader(Reader):
    """`read(n)` over a stream, pulling large chunks so length prefixes cost no muxer round."""

    def __init__(self, stream: INetStream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    async def read(self, n: int | None = None) -> bytes:
        if not self._buffer:
            chunk = await self._stream.read(READ_CHUNK_BYTES)
            if not chunk:
                return b""
            self._buffer += chunk
        size = len(self._buffer) if n is None else n
        out = bytes(self._buffer[:size])
        del self._buffer[:size]
        return out


class DuplexStreamLock:
    """Drop-in for `MplexStream.rw_lock` whose reads never wait for writes, nor writes for reads.

    Readers share the stream as before (the library's lock lets many readers in); writers take
    turns so each write's frames stay in order.
    """

    def __init__(self) -> None:
        self._writer = trio.Lock()

    @contextlib.asynccontextmanager
    async def read_lock(self) -> AsyncIterator[None]:
        yield

    @contextlib.asynccontextmanager
    async def write_lock(self) -> AsyncIterator[None]:
        async with self._writer:
            yield


class GuardedMplex(Mplex):
    """Mplex whose read errors end the connection instead of the node, with duplex streams
    written in 64 KiB frames (`_mplex_frames.py`)."""

    async def _initialize_stream(self, stream_id: StreamID, name: str) -> MplexStream:
        stream = await super()._initialize_stream(stream_id, name)
        # A drop-in for the library's lock, which is typed as its concrete class.
        stream.rw_lock = DuplexStreamLock()  # type: ignore[assignment]
        use_large_frames(stream)
        return stream

    async def read_message(self) -> tuple[int, int, bytes]:
        try:
            return await super().read_message()
        except MplexUnavailable:
            raise
        except Exception as error:  # boundary: a peer's corrupt frame must not end the Swarm
            logger.debug("closing a connection after an unreadable frame: %r", error)
            raise MplexUnavailable(f"unreadable frame: {error!r}") from error


class TunedGossipSub(GossipSub):
    """GossipSub with the content-keyed message cache and the cheaper, counted `send_rpc`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mcache = ContentKeyedMessageCache(self.mcache.window_size, self.mcache.history_size)
        self.outbound_drops = 0
        self._opportunistic_ticks: dict[str, int] = {}

    def mesh_heartbeat(self) -> tuple[defaultdict[ID, list[str]], defaultdict[ID, list[str]]]:
        peers_to_graft, peers_to_prune = super().mesh_heartbeat()
        for peer, topics in peers_to_prune.items():
            for topic in topics:
                self._add_back_off(peer, topic, False)
        return peers_to_graft, peers_to_prune

    def _perform_opportunistic_grafting(
        self, topic: str, peers_to_graft: defaultdict[ID, list[str]]
    ) -> int:
        ticks = self._opportunistic_ticks.get(topic, 0) + 1
        self._opportunistic_ticks[topic] = ticks
        pubsub, scorer = self.pubsub, self.scorer
        if ticks % OPPORTUNISTIC_GRAFT_TICKS or pubsub is None or scorer is None:
            return 0
        mesh = self.mesh.get(topic, set())
        if not mesh:
            return 0
        median = statistics.median(scorer.score(peer, [topic]) for peer in mesh)
        candidates = [
            peer
            for peer in pubsub.peer_topics.get(topic, ())
            if peer not in mesh
            and self._is_gossipsub_peer(peer)
            and not self._check_back_off(peer, topic)
            and scorer.score(peer, [topic]) > median
        ]
        chosen = random.sample(candidates, min(OPPORTUNISTIC_GRAFT_PEERS, len(candidates)))
        for peer in chosen:
            mesh.add(peer)
            self._notify_mesh_peer_added(peer, topic)
            scorer.on_join_mesh(peer, topic)
            peers_to_graft[peer].append(topic)
        return len(chosen)

    async def emit_control_message(self, control_msg: rpc_pb2.ControlMessage, to_peer: ID) -> None:
        # The library builds a signed peer record here only for `send_rpc` to drop it (lever 3).
        packet = rpc_pb2.RPC()
        packet.control.CopyFrom(control_msg)
        self.send_rpc(to_peer, packet, priority=True)

    def gossip_heartbeat(self) -> defaultdict[ID, dict[str, list[bytes]]]:
        peers_to_gossip: defaultdict[ID, dict[str, list[bytes]]] = defaultdict(dict)
        pubsub = self.pubsub
        if pubsub is None:
            return peers_to_gossip
        topics = list(self.mesh.items())
        topics += [(topic, peers) for topic, peers in self.fanout.items() if topic not in self.mesh]
        for topic, current in topics:
            msg_ids = self.mcache.window(topic)
            if not msg_ids:
                continue
            candidates = [
                peer
                for peer in pubsub.peer_topics.get(topic, ())
                if peer not in current
                and self._is_gossipsub_peer(peer)
                and (self.scorer is None or self.scorer.allow_gossip(peer, [topic]))
            ]
            count = max(GOSSIP_LAZY_PEERS, int(len(candidates) * GOSSIP_FACTOR))
            for peer in random.sample(candidates, min(count, len(candidates))):
                peers_to_gossip[peer][topic] = list(msg_ids)
        return peers_to_gossip

    def _get_peers_to_send(
        self,
        topic_ids: Iterable[str],
        msg_forwarder: ID,
        origin: ID,
        msg_id: bytes | None = None,
    ) -> Iterable[ID]:
        pubsub = self.pubsub
        topic_ids = list(topic_ids)
        thin_mesh = any(len(self.mesh.get(topic, ())) < self.degree_low for topic in topic_ids)
        if pubsub is None or msg_forwarder != pubsub.my_id or not thin_mesh:
            yield from super()._get_peers_to_send(topic_ids, msg_forwarder, origin, msg_id)
            return
        chosen: set[ID] = set()
        for topic in topic_ids:
            for peer in pubsub.peer_topics.get(topic, ()):
                if self.scorer is None or self.scorer.allow_publish(peer, [topic]):
                    chosen.add(peer)
        chosen.discard(origin)
        yield from chosen

    def send_rpc(self, peer_id: ID, rpc: rpc_pb2.RPC, priority: bool = False) -> None:
        pubsub = self.pubsub
        queue = pubsub.peer_queues.get(peer_id) if pubsub is not None else None
        if queue is None:
            super().send_rpc(peer_id, rpc, priority)
            return
        if queue._queue.max_size < OUTBOUND_QUEUE_SIZE:
            queue._queue.max_size = OUTBOUND_QUEUE_SIZE
        if rpc.senderRecord:
            rpc.ClearField("senderRecord")
        plain_publish = (
            len(rpc.publish) == 1
            and not rpc.subscriptions
            and not rpc.HasField("control")
            and peer_id not in self._pending_control
        )
        if not plain_publish:
            super().send_rpc(peer_id, rpc, priority)
            return
        # Shared by every peer's queue: nothing mutates an RPC after it is enqueued.
        if not queue.push(rpc, priority=priority):
            self._handle_dropped_rpc(peer_id, rpc, "queue_full")

    def _handle_dropped_rpc(self, peer_id: ID, rpc: rpc_pb2.RPC, reason: str) -> None:
        self.outbound_drops += 1
        super()._handle_dropped_rpc(peer_id, rpc, reason)


class TunedPubsub(Pubsub):
    """Pubsub with buffered reads, no push task per duplicate, a graylist and a threadless cache.

    `on_delivered(msg)` is called for each message the library delivers to our subscriptions
    (after validation and the seen check); `on_malformed_rpc(peer_id)` for an unparsable RPC.
    """

    def __init__(
        self,
        *args: Any,
        on_delivered: Callable[[rpc_pb2.Message], None],
        on_malformed_rpc: Callable[[ID], None],
        is_graylisted: Callable[[ID], bool],
        on_peer_failure: OnFailure,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._on_peer_failure = on_peer_failure
        self.seen_messages.stop()
        # A drop-in for the library's class, which is typed concretely (it starts a thread).
        self.seen_messages = ThreadlessSeenCache(self.seen_messages.ttl)  # type: ignore[assignment]
        self._on_delivered = on_delivered
        self._on_malformed_rpc = on_malformed_rpc
        self._is_graylisted = is_graylisted
        self.duplicates_skipped = 0
        self.graylisted_messages_ignored = 0
        self.gated_messages_judged = 0
        self.rpcs_batched = 0  # RPCs that shared a write with an earlier one
        self._registering: set[ID] = set()

    async def run(self) -> None:
        contain_service_tasks(self.manager, self._on_peer_failure)
        await super().run()

    async def _handle_new_peer_with_retry(self, peer_id: ID, timeout: float | None = None) -> None:
        # One registration per peer at a time, at most `MAX_PENDING_REGISTRATIONS`, each given
        # up after `PEER_REGISTRATION_TIMEOUT_S`: the library starts one per connection, retries
        # while the peer is connected and waits 30 s on each stream negotiation, so churning
        # peers piled up 1,000 of them and the service ended (`_containment`).
        if peer_id in self._registering or len(self._registering) >= MAX_PENDING_REGISTRATIONS:
            return
        self._registering.add(peer_id)
        try:
            with trio.move_on_after(PEER_REGISTRATION_TIMEOUT_S):
                await super()._handle_new_peer_with_retry(peer_id, timeout)
        finally:
            self._registering.discard(peer_id)

    async def handle_sending_messages(
        self, peer_id: ID, stream: INetStream, queue: RpcQueue
    ) -> None:
        # All queued RPCs in one write (one Yamux and Noise frame, one syscall, one scheduler
        # pass): a queue holds several only when this task fell behind, so batching grows with load.
        try:
            while True:
                rpc = await queue.pop()
                if rpc is None:
                    return
                batch = [_length_prefixed(rpc)]
                size = len(batch[0])
                while size < MAX_SEND_BATCH_BYTES and (more := queue._queue.pop()) is not None:
                    batch.append(_length_prefixed(more))
                    size += len(batch[-1])
                self.rpcs_batched += len(batch) - 1
                try:
                    await stream.write(b"".join(batch))
                except (StreamClosed, StreamReset):
                    logger.debug("pubsub stream to %s closed or reset", peer_id)
                    self._handle_dead_peer(peer_id)
                    return
        except Exception as error:  # boundary: the library's loop ends the same way
            logger.debug("sending loop for %s ended: %r", peer_id, error)
            self._handle_dead_peer(peer_id)

    async def _teardown_if_connected(self, peer_id: ID) -> None:
        stream = self.peers.get(peer_id)
        if stream is not None:
            await reset_quietly(stream)
        self._handle_dead_peer(peer_id)

    def notify_subscriptions(self, publish_message: rpc_pb2.Message) -> None:
        if any(topic in self.topic_ids for topic in publish_message.topicIDs):
            self._on_delivered(publish_message)

    async def continuously_read_stream(self, stream: INetStream) -> None:
        peer_id = stream.muxed_conn.peer_id
        reader = _BufferedReader(stream)
        try:
            while self.manager.is_running:
                incoming = await read_varint_prefixed_bytes_limited(
                    reader, self.max_inbound_rpc_size
                )
                rpc_incoming = rpc_pb2.RPC()
                try:
                    rpc_incoming.ParseFromString(incoming)
                except DecodeError:
                    self._on_malformed_rpc(peer_id)
                    return
                if not maybe_consume_signed_record(rpc_incoming, self.host, peer_id):
                    continue
                if rpc_incoming.publish:
                    self._push_unseen(peer_id, rpc_incoming.publish)
                if rpc_incoming.subscriptions:
                    if len(rpc_incoming.subscriptions) > self.max_subscriptions_per_rpc:
                        logger.warning(
                            "peer %s sent %d subscriptions in one RPC, ignoring them",
                            peer_id,
                            len(rpc_incoming.subscriptions),
                        )
                    else:
                        for sub in rpc_incoming.subscriptions:
                            self.handle_subscription(peer_id, sub)
                if rpc_incoming.HasField("control"):
                    await self.router.handle_rpc(rpc_incoming, peer_id)
        except MessageTooLarge:
            self._on_malformed_rpc(peer_id)
            await reset_quietly(stream)
            self._handle_dead_peer(peer_id)
        except (StreamEOF, StreamError, IOException, RawConnError, ParseError) as error:
            logger.debug("pubsub stream from %s ended: %r", peer_id, error)
        except IncompleteReadError as error:
            logger.debug("pubsub stream from %s ended mid-frame: %r", peer_id, error)

    def _judge_gated(self, peer_id: ID, msg: rpc_pb2.Message) -> None:
        """Validate (and so grade) a message the library's publish gate would drop unseen.

        The gate (not in the GossipSub spec) drops messages from peers below the publish
        threshold before validation: a spammer sat between the publish and graylist thresholds
        for good, muted but connected, its score decaying back and forth. Graded, its invalid
        messages take it to the graylist, and the enforcer bans it. Valid ones are still
        dropped, as the gate would.
        """
        self.gated_messages_judged += 1
        for topic_validator in self.get_msg_validators(msg):
            if not topic_validator.is_async:
                topic_validator.validator(peer_id, msg)

    def _push_unseen(self, peer_id: ID, messages: Sequence[rpc_pb2.Message]) -> None:
        if self._is_graylisted(peer_id):
            self.graylisted_messages_ignored += len(messages)
            return
        scorer = getattr(self.router, "scorer", None)
        for msg in messages:
            if not self._is_subscribed_to_msg(msg):
                continue
            if self._is_msg_seen(msg):
                self.duplicates_skipped += 1
                continue
            if scorer is not None and not scorer.allow_publish(peer_id, list(msg.topicIDs)):
                self._judge_gated(peer_id, msg)
                continue
            if self.manager.is_running:
                self.manager.run_task(self.push_msg, peer_id, msg)

