"""Our changes to py-libp2p 0.8.1's Pubsub and GossipSub, each small, measured and documented.

Every lever here touches members the library does not promise to keep (`_queue`,
`_pending_control`, `continuously_read_stream`'s body, `seen_messages`, `mcache`), which is why
`libp2p` is pinned exactly and `tests/unit/net/test_net_levers.py` checks each one against the
installed library: a version bump that moves them fails that test instead of silently undoing
the tuning. Figures: /work/shared/notes/libp2p.md ("Cutting GossipSub CPU") and
benchmarks/RESULTS.md ("Gossip network").

The levers (4, 13, 14, 15 and 16 are `TunedPubsub`, in `_pubsub_levers.py`; 11 is in
`_mplex.py`; the muxer's own are in `_yamux.py`, and those of the layers under it in
`_secure_channel.py`):
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
15. `TunedPubsub._push_unseen`: the library starts a task (through its service manager) for
   every new message it reads; a message whose topics have only synchronous validators is
   pushed in the reading task instead, since nothing in its push waits.
16. `TunedPubsub.push_msg`: the library's push, step for step, without verifying the libp2p
   message signature where our validator runs (`validators_check_source`): it checks that the
   envelope is signed by the key of the message's `from` peer, which is what that signature
   proves. It was the second secp256k1 operation per message per node.
17. `TunedGossipSub.publish`: the library's forwarding without the per-message work for
   features we do not use: a signed peer record (lever 3 strips it), IDONTWANT and observer
   IHAVEs (meshsub 1.2/1.3), and queueing the message for every connected peer that is not
   subscribed to its topic, which is dropped when that peer subscribes or kept until it expires
   (publish-only providers never subscribe). Peers not identified yet still get it queued.
18. `TunedGossipSub._mesh_peers_to_send`: for topics we are meshed in, the library's choice
   without its scan of every topic peer for floodsub ones (we speak only meshsub).
19. `ReportedScorer.allow_publish`/`allow_gossip`/`is_graylisted`: every threshold is below
   zero, so a peer that cannot score below zero passes each gate without a score being summed;
   they are asked for every mesh peer of every forwarded message. The mesh choice asks
   `may_score_below_zero` once per peer where it asked two gates, each asking it again, and
   it answers from a set of suspects that the penalty tables and P4 reports keep current (a set
   lookup where it summed five tables, each hashing the peer ID in Python).
20. `LruValidationCache`: the library's cache of validation results keeps its LRU order in a
   list, so every validated message paid a scan of up to 1,000 message IDs (`in`, `remove`,
   `pop(0)`), and a flood of distinct invalid messages paid it each. Ours keeps the same
   entries, expiry and capacity in an `OrderedDict`: constant time.
21. `message_id_bytes`: GossipSub reads each message ID of every IHAVE and IWANT through
   `safe_bytes_from_hex`, which first decodes the ID as ASCII text and, for a binary ID such as
   ours (lever 1), returns it from the `UnicodeDecodeError`: an exception per ID, about 2 % of a
   gossiping node's CPU. Ours returns a non-ASCII ID at once and hands anything else to the
   library's function; the library looks the name up in its module on every call.
Levers 15-19, with the muxer's in `_yamux.py`, took gossip at 50 nodes and 20 offers/s from
1.6 to 1.1 ms of CPU per delivery; lever 20, the score shortcut per peer and the one-step Noise
frames of `_secure_channel.py` took 6 % more; lever 21, the suspects set, the forwarding's set
difference, Yamux's buffered bodies and envelopes that keep their received bytes 8-14 % more,
to about 1.0 ms (RESULTS.md, "Gossip at 20 offers/s").
"""

from __future__ import annotations

import hashlib
import logging
import random
import statistics
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import libp2p.pubsub.gossipsub as library_gossipsub
from libp2p.abc import IHost
from libp2p.peer.id import ID
from libp2p.pubsub.exceptions import NoPubsubAttached
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.mcache import CacheEntry, MessageCache
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import ValidationCache, ValidationResult
from libp2p.pubsub.score import PeerScorer, ScoreParams
from multiaddr import Multiaddr

from lilypad_p2p.net._params import OUTBOUND_QUEUE_SIZE

logger = logging.getLogger(__name__)

MESSAGE_ID_BYTES = 20
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
# P4 counts below this are forgotten (they no longer move a score measurably).
_NEGLIGIBLE_INVALID_COUNT = 0.01


def message_id(msg: rpc_pb2.Message) -> bytes:
    """Content-addressed pubsub message ID: the first 20 bytes of sha256(payload)."""
    return hashlib.sha256(msg.data).digest()[:MESSAGE_ID_BYTES]


_library_message_id_bytes = library_gossipsub.safe_bytes_from_hex


def message_id_bytes(value: str | bytes | bytearray) -> bytes | None:
    """The library's `safe_bytes_from_hex`, without its exception for a binary ID."""
    if type(value) is bytes and not value.isascii():
        return value
    return _library_message_id_bytes(value)


library_gossipsub.safe_bytes_from_hex = message_id_bytes


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


class LruValidationCache(ValidationCache):
    """Drop-in for py-libp2p's `ValidationCache` (`get`/`put`/`_remove`/`clear_expired`) with
    its LRU order in the dictionary itself."""

    def __init__(self, ttl: int, max_size: int) -> None:
        super().__init__(ttl, max_size)
        self.cache: OrderedDict[bytes, ValidationResult] = OrderedDict()

    def get(self, msg_id: bytes) -> ValidationResult | None:
        result = self.cache.get(msg_id)
        if result is None:
            return None
        if time.time() - result.timestamp > self.ttl:  # the library stamps with time.time()
            del self.cache[msg_id]
            return None
        self.cache.move_to_end(msg_id)
        return result

    def put(self, msg_id: bytes, result: ValidationResult) -> None:
        # As the library: a full cache makes room first, even when `msg_id` is in it.
        while self.cache and len(self.cache) >= self.max_size:
            self.cache.popitem(last=False)
        self.cache[msg_id] = result
        self.cache.move_to_end(msg_id)

    def _remove(self, msg_id: bytes) -> None:
        self.cache.pop(msg_id, None)


# The library's behaviour penalty tables (P5 and its v1.4 additions), all per peer.
_PENALTY_TABLES = (
    "behavior_penalty",
    "graft_flood_penalties",
    "iwant_spam_penalties",
    "ihave_spam_penalties",
    "equivocation_penalties",
)


class _PenaltyTable(defaultdict[ID, float]):
    """A penalty table that tells `changed` of every entry raised (the library only assigns,
    adds, multiplies and deletes entries; reads stay the dictionary's own). Lowering one (decay,
    every heartbeat for every entry; deletion, when a peer leaves) only clears suspicion, which
    the heartbeat and `remove_peer` reconsider."""

    def __init__(self, changed: Callable[[ID], None]) -> None:
        super().__init__(float)
        self._changed = changed

    def __setitem__(self, peer: ID, value: float) -> None:
        raised = value > self.get(peer, 0.0)
        super().__setitem__(peer, value)
        if raised:
            self._changed(peer)


class ReportedScorer(PeerScorer):
    """A `PeerScorer` whose P4 (invalid messages) is fed only by graded `report_peer` calls."""

    def __init__(self, params: ScoreParams) -> None:
        super().__init__(params)
        # The peers `may_score_below_zero` is true of, updated wherever a count or penalty is
        # added, decayed or dropped: it is asked for every mesh peer of every forwarded message.
        self._suspects: set[ID] = set()
        for name in _PENALTY_TABLES:
            setattr(self, name, _PenaltyTable(self._reconsider))

    def on_invalid_message(self, peer: ID, topic: str) -> None:
        """Ignored: the library calls this for every failed validation with weight 1."""

    def add_invalid_messages(self, peer: ID, topic: str, count: float) -> None:
        """Add `count` P4 invalid-message counts for `peer` on `topic`."""
        self.invalid_messages[peer][topic] += count
        self._reconsider(peer)

    def remove_peer(self, peer: ID) -> None:
        """Forget a disconnected peer, except its P4 counts: reconnecting must not launder them.

        The kept counts still decay every heartbeat and are dropped once negligible.
        """
        kept = self.invalid_messages.pop(peer, None)
        super().remove_peer(peer)
        if kept is not None and max(kept.values(), default=0.0) >= _NEGLIGIBLE_INVALID_COUNT:
            self.invalid_messages[peer] = kept
        self._reconsider(peer)

    def may_score_below_zero(self, peer: ID) -> bool:
        """False when `peer` cannot score below zero, so cannot be graylisted: no P4 counts and
        behaviour penalties within the free threshold (P1-P3 only add; our `score_params`
        leave P6 and P7 unweighted). One set lookup instead of a score, for the ban sweep, the
        check on every inbound RPC and every gate a forwarded message passes."""
        return peer in self._suspects

    def _reconsider(self, peer: ID) -> None:
        if self._has_anything_against(peer):
            self._suspects.add(peer)
        else:
            self._suspects.discard(peer)

    def _has_anything_against(self, peer: ID) -> bool:
        # Zero counts do not count: scoring a peer leaves them behind (defaultdicts).
        counts = self.invalid_messages.get(peer)
        if counts and max(counts.values()) > 0:  # counts are never negative
            return True
        total = sum(getattr(self, name).get(peer, 0.0) for name in _PENALTY_TABLES)
        return total > self.params.p5_behavior_penalty_threshold

    # Every threshold is below zero (`_params`), so a peer that cannot score below zero
    # passes each gate: no score is summed for it, on every peer of every forwarded message.
    def allow_publish(self, peer: ID, topics: list[str]) -> bool:
        return bool(topics) and (
            not self.may_score_below_zero(peer) or super().allow_publish(peer, topics)
        )

    def allow_gossip(self, peer: ID, topics: list[str]) -> bool:
        return bool(topics) and (
            not self.may_score_below_zero(peer) or super().allow_gossip(peer, topics)
        )

    def is_graylisted(self, peer: ID, topics: list[str]) -> bool:
        return self.may_score_below_zero(peer) and super().is_graylisted(peer, topics)

    def on_heartbeat(self, dt_seconds: float = 1.0) -> None:
        super().on_heartbeat(dt_seconds)
        for peer in [
            peer
            for peer, counts in self.invalid_messages.items()
            if max(counts.values(), default=0.0) < _NEGLIGIBLE_INVALID_COUNT
        ]:
            del self.invalid_messages[peer]
        # Decay only lowers counts and penalties: a suspect may be cleared, no one added.
        for peer in list(self._suspects):
            self._reconsider(peer)


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


def _score_shortcut(scorer: PeerScorer | None) -> Callable[[ID], bool]:
    """`ReportedScorer.may_score_below_zero`, or "it may" for any other scorer."""
    if isinstance(scorer, ReportedScorer):
        return scorer.may_score_below_zero
    return _may_always


def _may_always(peer: ID) -> bool:
    return True


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
        if pubsub is None or any(topic not in self.mesh for topic in topic_ids):
            yield from super()._get_peers_to_send(topic_ids, msg_forwarder, origin, msg_id)
            return
        thin_mesh = any(len(self.mesh[topic]) < self.degree_low for topic in topic_ids)
        if msg_forwarder != pubsub.my_id or not thin_mesh:
            yield from self._mesh_peers_to_send(topic_ids, msg_forwarder, origin, msg_id)
            return
        chosen: set[ID] = set()
        for topic in topic_ids:
            for peer in pubsub.peer_topics.get(topic, ()):
                if self.scorer is None or self.scorer.allow_publish(peer, [topic]):
                    chosen.add(peer)
        chosen.discard(origin)
        yield from chosen

    async def publish(self, msg_forwarder: ID, pubsub_msg: rpc_pb2.Message) -> None:
        # The library's forwarding less what it does per message for features we do not use:
        # the signed peer record it attaches (`send_rpc` strips it), IDONTWANT and topic
        # observers (meshsub 1.2 and 1.3; we speak 1.1 and 1.0), and queueing the message for
        # every connected peer not subscribed to the topic - to be dropped when that peer
        # subscribes to anything, or never sent at all: publish-only providers never
        # subscribe. A peer that subscribes is sent the topic's recent messages by the library
        # anyway. Topic peers whose protocol is not known yet still get the message queued (a
        # peer with a pubsub stream always has a known protocol: the library records it first).
        pubsub = self.pubsub
        if pubsub is None:
            raise NoPubsubAttached
        if not self._check_spam_protection(msg_forwarder, pubsub_msg):
            return
        if not self._check_equivocation(pubsub_msg):
            return
        self.mcache.put(pubsub_msg)
        topics = list(pubsub_msg.topicIDs)
        origin = ID(pubsub_msg.from_id)
        rpc = rpc_pb2.RPC(publish=[pubsub_msg])
        scorer = self.scorer
        for peer_id in self._get_peers_to_send(
            topics, msg_forwarder, origin, pubsub.get_message_id(pubsub_msg)
        ):
            if peer_id in pubsub.peers and (
                scorer is None or scorer.allow_publish(peer_id, topics)
            ):
                self.send_rpc(peer_id, rpc)
        # Set differences against the dict, in C with the hashes the sets hold: a peer ID's
        # `__hash__` is Python code, and this runs over every topic peer of every message.
        not_yet_identified: set[ID] = set()
        for topic in topics:
            not_yet_identified |= pubsub.peer_topics.get(topic, set()).difference(
                self.peer_protocol
            )
        if not_yet_identified:
            not_yet_identified -= self.direct_peers.keys() | {msg_forwarder, origin}
        for peer_id in not_yet_identified:
            self._prune_pending_messages(peer_id)
            self._pending_messages[peer_id].append((time.time(), rpc))
        now = time.time()
        for topic in topics:
            self.time_since_last_publish[topic] = int(now)
            self.recent_message_deliveries[topic].append(now)

    def _mesh_peers_to_send(
        self, topic_ids: list[str], msg_forwarder: ID, origin: ID, msg_id: bytes | None
    ) -> set[ID]:
        # The library's choice for topics we are meshed in, without its scan of every topic
        # peer for floodsub ones: we speak only meshsub (`GossipNet`), so there are none.
        pubsub = self.pubsub
        assert pubsub is not None
        scorer = self.scorer
        may_go_below_zero = _score_shortcut(scorer)
        send_to: set[ID] = set()
        for topic in topic_ids:
            if topic not in pubsub.peer_topics:
                continue
            send_to.update(self.direct_peers)
            for peer in self.mesh[topic]:
                if (
                    scorer is None
                    or not may_go_below_zero(peer)  # then it passes both gates below
                    or (
                        scorer.allow_gossip(peer, [topic])
                        and not scorer.is_graylisted(peer, [topic])
                    )
                ):
                    send_to.add(peer)
        send_to.discard(msg_forwarder)
        send_to.discard(origin)
        if msg_id is None:
            return send_to
        return {
            peer for peer in send_to if msg_id not in self.dont_send_message_ids.get(peer, ())
        }

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
