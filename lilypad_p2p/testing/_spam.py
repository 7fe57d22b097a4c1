"""A spamming node (test fault, config `spam_gossip_per_s`; the simnet's `spam` scenario).

The node keeps its honest roles and, besides, sends every pubsub peer a steady stream of gossip
that honest validators must reject: forged signatures, oversized payloads, expired records,
undecodable bytes and records signed by a key that is not the libp2p source. The payloads are
built by a pure function (tested against `validate_gossip`); the sender goes beneath our own
`GossipNet.publish`, which refuses invalid envelopes, and puts the messages straight into the
router's per-peer queues, correctly signed at the pubsub layer so only our validator can object.
That reaches into `GossipNet`'s private pubsub members on purpose: an attacker is not bound by
our API, and this fault exists only to show that honest nodes score such a peer out.
"""

from __future__ import annotations

import enum
import itertools
import logging
from collections.abc import Callable

import trio
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import PUBSUB_SIGNING_PREFIX

from lilypad_p2p import wire
from lilypad_p2p.identity import Identity
from lilypad_p2p.logs import event
from lilypad_p2p.net import NODES_TOPIC, GossipNet

log = logging.getLogger("lilypad_p2p.testing.spam")

# How far in the past the expired offers lie (well beyond any clock-skew allowance).
EXPIRED_BY_MS = 60_000
# The spammer's first message waits this long for the node's first mesh and peers.
SPAM_START_DELAY_S = 2.0
# How often (in messages) the spammer logs how much it has sent.
SPAM_LOG_EVERY = 500


class SpamKind(enum.Enum):
    """One way to be invalid; each maps to a `DropReason` an honest validator must give."""

    BAD_SIGNATURE = "bad_signature"
    OVERSIZED = "oversized"
    EXPIRED = "expired"
    MALFORMED = "malformed"
    SIGNER_NOT_SOURCE = "signer_not_source"


def _record(owner: Identity, *, created_at: int, expires_at: int, nonce: int) -> wire.NodeRecord:
    # A NodeRecord, not an offer: every node subscribes to its topic, whatever its markets.
    return wire.NodeRecord(
        address=owner.address,
        peer_id=str(owner.peer_id),
        roles=(),
        sealing_public_key=owner.sealing_public_key,
        markets=(),
        mediator_available=False,
        listen_addrs=(),
        created_at=created_at,
        expires_at=expires_at,
        nonce=nonce,
    )


def spam_payload(kind: SpamKind, spammer: Identity, stranger: Identity, *, now_ms: int,
                 nonce: int) -> bytes:
    """The gossip payload for one spam message of `kind`, published as `spammer`.

    The payloads travel on the nodes topic. `stranger` signs the SIGNER_NOT_SOURCE records (a
    valid envelope, but not the source's).
    Each payload is distinct (`nonce`), so seen caches never spare the receiver the work.
    """
    lifetime = wire.ENVELOPE_MAX_AGE_MS // 2
    if kind is SpamKind.MALFORMED:
        return b"\xc1" + nonce.to_bytes(8, "big") * 4  # 0xc1 is never valid msgpack
    if kind is SpamKind.OVERSIZED:
        return nonce.to_bytes(8, "big") * (wire.MAX_MESSAGE_BYTES // 8 + 1)
    if kind is SpamKind.EXPIRED:
        created = now_ms - EXPIRED_BY_MS
        body = _record(spammer, created_at=created, expires_at=now_ms - 1, nonce=nonce)
        return spammer.sign_envelope(body, created).encode()
    if kind is SpamKind.SIGNER_NOT_SOURCE:
        body = _record(stranger, created_at=now_ms, expires_at=now_ms + lifetime, nonce=nonce)
        return stranger.sign_envelope(body, now_ms).encode()
    body = _record(spammer, created_at=now_ms, expires_at=now_ms + lifetime, nonce=nonce)
    envelope = spammer.sign_envelope(body, now_ms)
    forged = bytearray(envelope.signature)
    forged[len(forged) // 2] ^= 0x01
    return wire.SignedEnvelope(signer=envelope.signer, published_at=envelope.published_at,
                               body=envelope.body, signature=bytes(forged)).encode()


async def spam_gossip(net: GossipNet, spammer: Identity, rate_per_s: int,
                      clock_ms: Callable[[], int]) -> None:
    """Send `rate_per_s` invalid messages a second on the nodes topic, to every pubsub peer."""
    pubsub, router = net._pubsub, net._gossipsub  # see the module docstring
    stranger = Identity.generate()
    topic = str(NODES_TOPIC)
    kinds = itertools.cycle(SpamKind)
    await trio.sleep(SPAM_START_DELAY_S)
    for sent in itertools.count(1):
        message = rpc_pb2.Message(
            data=spam_payload(next(kinds), spammer, stranger, now_ms=clock_ms(), nonce=sent),
            topicIDs=[topic], from_id=net.peer_id.to_bytes(), seqno=sent.to_bytes(8, "big"),
        )
        sign_key = pubsub.sign_key
        if sign_key is not None:
            message.signature = sign_key.sign(PUBSUB_SIGNING_PREFIX.encode()
                                              + message.SerializeToString())
            message.key = pubsub.host.get_public_key().serialize()
        rpc = rpc_pb2.RPC(publish=[message])
        for peer in list(router.peer_protocol):
            router.send_rpc(peer, rpc)
        if sent % SPAM_LOG_EVERY == 0:
            event(log, "spam.sent", messages=sent, peers=len(router.peer_protocol))
        await trio.sleep(1 / rate_per_s)
