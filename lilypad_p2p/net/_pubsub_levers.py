"""Our py-libp2p `Pubsub`: buffered reads, pushes without a task each, one registration task
per peer, batched writes, and no second signature check where our validator checks the source.

Levers 4, 13, 14, 15, 16 and 20 of `_levers.py`, the catalogue of our py-libp2p changes (what each
is, why, and its figures); `tests/unit/net/test_net_levers.py` pins the library members they
lean on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import trio
from google.protobuf.message import DecodeError
from libp2p.abc import INetStream
from libp2p.exceptions import ParseError, ValidationError
from libp2p.io.abc import Reader
from libp2p.io.exceptions import IncompleteReadError, IOException, MessageTooLarge
from libp2p.network.connection.exceptions import RawConnError
from libp2p.network.stream.exceptions import StreamClosed, StreamEOF, StreamError, StreamReset
from libp2p.peer.id import ID
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from libp2p.pubsub.rpc_queue import RpcQueue
from libp2p.pubsub.utils import maybe_consume_signed_record
from libp2p.pubsub.validators import signature_validator
from libp2p.utils.varint import encode_uvarint, read_varint_prefixed_bytes_limited

from lilypad_p2p.net._containment import OnFailure, contain_service_tasks, reset_quietly
from lilypad_p2p.net._eager_lock import make_eager
from lilypad_p2p.net._levers import LruValidationCache, ThreadlessSeenCache

logger = logging.getLogger(__name__)

# Bytes pulled from the muxer per read on inbound pubsub streams.
READ_CHUNK_BYTES = 64 * 1024
# Pubsub stream registrations with new peers in flight, and how long one may take in all.
MAX_PENDING_REGISTRATIONS = 256
PEER_REGISTRATION_TIMEOUT_S = 60.0
# A write to a peer's pubsub stream takes queued RPCs up to this many bytes (one Noise frame).
MAX_SEND_BATCH_BYTES = 32 * 1024


def _length_prefixed(rpc: rpc_pb2.RPC) -> bytes:
    data = rpc.SerializeToString()
    return encode_uvarint(len(data)) + data


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
        validators_check_source: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._on_peer_failure = on_peer_failure
        self._validators_check_source = validators_check_source
        self.seen_messages.stop()
        # A drop-in for the library's class, which is typed concretely (it starts a thread).
        self.seen_messages = ThreadlessSeenCache(self.seen_messages.ttl)  # type: ignore[assignment]
        cache = self.validation_cache
        self.validation_cache = LruValidationCache(cache.ttl, cache.max_size)
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
        make_eager(stream, "_state_lock")
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
        make_eager(stream, "_state_lock")
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
                    for msg in self._push_unseen(peer_id, rpc_incoming.publish):
                        await self._push_here(peer_id, msg)
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

    def _push_unseen(
        self, peer_id: ID, messages: Sequence[rpc_pb2.Message]
    ) -> list[rpc_pb2.Message]:
        """Start pushing each new message in `messages`; those the caller pushes itself.

        A message whose topics have only synchronous validators comes back to be pushed in the
        reading task: nothing in its push waits, so a task of its own (spawned and reaped by
        the library's service manager) only added cost. One with an asynchronous validator gets
        its own task, as in the library, so a slow validator does not stall the stream.
        """
        if self._is_graylisted(peer_id):
            self.graylisted_messages_ignored += len(messages)
            return []
        scorer = getattr(self.router, "scorer", None)
        here: list[rpc_pb2.Message] = []
        for msg in messages:
            if not self._is_subscribed_to_msg(msg):
                continue
            if self._is_msg_seen(msg):
                self.duplicates_skipped += 1
                continue
            if scorer is not None and not scorer.allow_publish(peer_id, list(msg.topicIDs)):
                self._judge_gated(peer_id, msg)
                continue
            if any(validator.is_async for validator in self.get_msg_validators(msg)):
                if self.manager.is_running:
                    self.manager.run_task(self.push_msg, peer_id, msg)
            else:
                here.append(msg)
        return here

    async def push_msg(self, msg_forwarder: ID, msg: rpc_pb2.Message) -> None:
        # The library's push, step for step, except that with `validators_check_source` the
        # libp2p message signature is not verified where a topic validator runs: ours checks
        # that the envelope is signed by the key of the message's `from` peer, which is what
        # that signature proves (the rest it covers, seqno and topic, we do not trust anyway:
        # message IDs are content hashes and the validator checks the topic). It was the
        # second secp256k1 operation on every message every node received.
        if self.is_peer_blacklisted(msg_forwarder) or self.is_peer_blacklisted(ID(msg.from_id)):
            return
        if self._is_msg_seen(msg):
            return
        topics = list(msg.topicIDs)
        scorer = getattr(self.router, "scorer", None)
        if scorer is not None and not scorer.allow_publish(msg_forwarder, topics):
            return
        validated = bool(topics) and all(topic in self.topic_validators for topic in topics)
        source_checked = self._validators_check_source and validated
        if self.strict_signing and not source_checked and not signature_validator(msg):
            return
        try:
            await self.validate_msg(msg_forwarder, msg)
        except ValidationError:
            if scorer is not None:
                for topic in topics:
                    scorer.on_invalid_message(msg_forwarder, topic)
            return
        self._mark_msg_seen(msg)
        if scorer is not None:
            for topic in topics:
                scorer.on_first_delivery(msg_forwarder, topic)
        if ID(msg.from_id) == self.my_id and msg_forwarder != self.my_id:
            return
        self.notify_subscriptions(msg)
        await self.router.publish(msg_forwarder, msg)

    async def _push_here(self, peer_id: ID, msg: rpc_pb2.Message) -> None:
        try:
            await self.push_msg(peer_id, msg)
        except Exception as error:  # boundary: as a contained push task, one message's failure
            logger.warning("push_msg failed (peer %s): %r", peer_id, error)
            self._on_peer_failure(peer_id, "push_msg", error)
