"""The gossip validator's decision, pure: bytes + topic + libp2p source + now -> verdict.

It runs before a message is delivered or forwarded. Order matters only for cost: the size check
comes before any parsing, the signature is checked by `open_envelope` before the source and
topic checks, and the replay guard records an envelope only once everything else passed (a
rejected copy must not poison the guard for a valid one).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from libp2p.peer.id import ID

from lilypad_p2p import wire
from lilypad_p2p.market import ReplayGuard
from lilypad_p2p.net._errors import TopicError
from lilypad_p2p.net._peer_actions import DropReason
from lilypad_p2p.net._topics import NODES_TOPIC, JobsTopic, MarketTopic, Topic, parse_topic

# Most specific first: `reason_for_wire_error` takes the first class the error is an instance of.
_WIRE_ERROR_REASONS: tuple[tuple[type[wire.WireError], DropReason], ...] = (
    (wire.OversizedMessage, DropReason.OVERSIZED),
    (wire.MalformedMessage, DropReason.MALFORMED),
    (wire.BadSignature, DropReason.BAD_SIGNATURE),
    (wire.SignerNotOwner, DropReason.SIGNER_NOT_OWNER),
    (wire.ExpiredMessage, DropReason.EXPIRED),
    (wire.FutureDatedMessage, DropReason.FUTURE_DATED),
    (wire.StaleMessage, DropReason.STALE),
)


@dataclass(frozen=True, slots=True)
class Accepted:
    """The message is valid: deliver and forward it."""

    envelope: wire.SignedEnvelope


@dataclass(frozen=True, slots=True)
class Rejected:
    """The message is dropped; `reason` is graded against the forwarder."""

    reason: DropReason
    detail: str


Verdict = Accepted | Rejected


def reason_for_wire_error(error: wire.WireError) -> DropReason:
    """The drop reason for an error `open_envelope` raised."""
    for error_type, reason in _WIRE_ERROR_REASONS:
        if isinstance(error, error_type):
            return reason
    return DropReason.MALFORMED


def topic_for(envelope: wire.SignedEnvelope, *, cancels_job_offer: bool = False) -> Topic:
    """The topic to publish `envelope` on, from its body's type and market; a cancellation goes
    where the offer it withdraws went (`cancels_job_offer`)."""
    body = envelope.body
    if isinstance(body, wire.NodeRecord):
        return NODES_TOPIC
    if isinstance(body, wire.JobOffer) or (isinstance(body, wire.Cancel) and cancels_job_offer):
        return JobsTopic(body.market)
    return MarketTopic(body.market)


def topics_for(envelope: wire.SignedEnvelope) -> tuple[Topic, ...]:
    """The topics `envelope` may arrive on: a cancellation on either topic of its market, since
    a receiver need not hold the offer it withdraws to know which kind that was."""
    if isinstance(envelope.body, wire.Cancel):
        return (MarketTopic(envelope.body.market), JobsTopic(envelope.body.market))
    return (topic_for(envelope),)


def check_pulled(
    data: bytes, *, markets: Collection[str], job_markets: Collection[str], now_ms: int
) -> Verdict | None:
    """What offer sync brought, checked as gossip is, for one who follows `markets` and the job
    offers of `job_markets`. None: skip it without blame: stale or expired (an honest peer may
    hold an offer whose owner has gone quiet), or a job offer we do not follow (the server may
    not know our subscriptions yet)."""
    try:
        envelope = wire.open_envelope(data, now_ms=now_ms)
    except (wire.StaleMessage, wire.ExpiredMessage):
        return None
    except wire.WireError as error:
        return Rejected(reason_for_wire_error(error), f"{type(error).__name__}: {error}")
    body = envelope.body
    if isinstance(body, wire.NodeRecord):
        return Accepted(envelope)
    if not isinstance(body, wire.ResourceOffer | wire.JobOffer) or body.market not in markets:
        return Rejected(DropReason.WRONG_TOPIC, f"{body.type} is not an offer of our markets")
    if isinstance(body, wire.JobOffer) and body.market not in job_markets:
        return None
    return Accepted(envelope)


def validate_gossip(
    data: bytes,
    topics: tuple[str, ...],
    source: ID,
    *,
    now_ms: int,
    replay_guard: ReplayGuard,
) -> Verdict:
    """Decide whether a gossip message may be delivered and forwarded.

    Args:
        data: the pubsub message payload (an encoded `SignedEnvelope`).
        topics: the pubsub message's topic strings (exactly one is allowed).
        source: the libp2p peer that originated the message (its signed `from` field).
        now_ms: the receiver's wall clock, in milliseconds.
        replay_guard: remembers accepted envelopes; only a fully valid message is recorded.
    """
    if len(data) > wire.MAX_MESSAGE_BYTES:
        return Rejected(DropReason.OVERSIZED, f"{len(data)} bytes")
    if len(topics) != 1:
        return Rejected(DropReason.WRONG_TOPIC, f"{len(topics)} topics")
    try:
        topic = parse_topic(topics[0])
    except TopicError as error:
        return Rejected(DropReason.WRONG_TOPIC, str(error))
    try:
        envelope = wire.open_envelope(data, now_ms=now_ms)
    except wire.WireError as error:
        return Rejected(reason_for_wire_error(error), f"{type(error).__name__}: {error}")
    try:
        source_address = wire.address_from_peer_id_bytes(source.to_bytes())
    except ValueError as error:
        return Rejected(DropReason.SIGNER_NOT_SOURCE, f"source has no address: {error}")
    if source_address.lower() != envelope.signer.lower():
        return Rejected(DropReason.SIGNER_NOT_SOURCE, "signed by a key other than the source")
    try:
        expected = topics_for(envelope)
    except TopicError as error:
        return Rejected(DropReason.WRONG_TOPIC, str(error))
    if topic not in expected:
        return Rejected(DropReason.WRONG_TOPIC, f"{envelope.body.type} belongs on {expected[0]}")
    if not replay_guard.check_and_record(envelope, now_ms):
        return Rejected(DropReason.REPLAYED, "envelope already seen")
    return Accepted(envelope)
