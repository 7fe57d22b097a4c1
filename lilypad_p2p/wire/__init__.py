"""The wire format: canonical msgpack, message schemas, CIDs, signed envelopes. Pure, no I/O.

Receivers call `open_envelope(data, now_ms=...)`, which returns a `SignedEnvelope` or raises a
`WireError` (a `PeerMisbehaved`). Senders build a message, sign it with `sign_envelope` (or
`Identity.sign_envelope`) and publish `envelope.encode()`.
"""

from lilypad_p2p.wire._codec import decode, encode
from lilypad_p2p.wire._constants import (
    ENVELOPE_MAX_AGE_MS,
    MAX_CLOCK_SKEW_MS,
    MAX_LIFETIME_MS,
    MAX_MESSAGE_BYTES,
    MAX_NESTING_DEPTH,
)
from lilypad_p2p.wire._envelope import (
    SignedEnvelope,
    check_freshness,
    envelope_digest,
    open_envelope,
    sign_envelope,
    verify_signature,
)
from lilypad_p2p.wire._errors import (
    BadSignature,
    ExpiredMessage,
    FutureDatedMessage,
    InvalidMessage,
    MalformedMessage,
    NonCanonicalEncoding,
    OversizedMessage,
    SignerNotOwner,
    StaleMessage,
    UnencodableValue,
    UnsupportedVersion,
    WireError,
)
from lilypad_p2p.wire._fields import MARKET_NAME, MODULE_ID
from lilypad_p2p.wire._ids import (
    address_from_peer_id_bytes,
    address_from_peer_id_text,
    content_id,
    is_content_id,
)
from lilypad_p2p.wire._schemas import (
    MAX_MATCHES,
    MESSAGE_TYPES,
    ROLES,
    Cancel,
    JobOffer,
    MatchProposal,
    Message,
    NodeRecord,
    Offer,
    ResourceOffer,
    ResourceSpec,
    matching_content_id,
    message_from_wire,
)

__all__ = [
    "ENVELOPE_MAX_AGE_MS",
    "MARKET_NAME",
    "MAX_CLOCK_SKEW_MS",
    "MAX_LIFETIME_MS",
    "MAX_MATCHES",
    "MAX_MESSAGE_BYTES",
    "MAX_NESTING_DEPTH",
    "MESSAGE_TYPES",
    "MODULE_ID",
    "ROLES",
    "BadSignature",
    "Cancel",
    "ExpiredMessage",
    "FutureDatedMessage",
    "InvalidMessage",
    "JobOffer",
    "MalformedMessage",
    "MatchProposal",
    "Message",
    "NodeRecord",
    "NonCanonicalEncoding",
    "Offer",
    "OversizedMessage",
    "ResourceOffer",
    "ResourceSpec",
    "SignedEnvelope",
    "SignerNotOwner",
    "StaleMessage",
    "UnencodableValue",
    "UnsupportedVersion",
    "WireError",
    "address_from_peer_id_bytes",
    "address_from_peer_id_text",
    "check_freshness",
    "content_id",
    "decode",
    "encode",
    "envelope_digest",
    "is_content_id",
    "matching_content_id",
    "message_from_wire",
    "open_envelope",
    "sign_envelope",
    "verify_signature",
]
