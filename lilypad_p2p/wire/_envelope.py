"""Signed envelopes: a message, when it was published, who signed it, and the signature.

Wire form (canonical msgpack map):
    {"body": <message map>, "published_at": <ms>, "signature": <65-byte bin>,
     "signer": <20-byte bin>, "v": 1}

What is signed. The node key also controls funds, so it never signs a bare keccak256 of bytes a
peer could choose (they might parse as a transaction). The digest is EIP-191 shaped, with a
version byte of our own (0x4c, "L", unused by EIP-191's registered versions) and a domain that
names the protocol, the envelope version and the message type:

    digest = keccak256(0x19 || 0x4c || "lilypad-p2p/envelope/1/<type>" || 0x00 ||
                       encode({"body": <message map>, "published_at": <ms>}))

The signature is 65 bytes r || s || v (v in {0, 1}) with low s (s <= n/2), so every signed
envelope has exactly one valid encoding and one envelope ID. Contract-verified structures
(Deal, Acceptance, Verdict, ...) use EIP-712 instead, elsewhere.

Owners re-publish a long-lived offer by signing the same body again with a new `published_at`:
the offer keeps its ID (the body's CID), the envelope gets a new `envelope_id`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack
from coincurve import PublicKey as CurvePublicKey
from eth_hash.auto import keccak
from eth_keys.datatypes import PrivateKey

from lilypad_p2p.wire._codec import decode
from lilypad_p2p.wire._constants import (
    ENVELOPE_MAX_AGE_MS,
    MAX_CLOCK_SKEW_MS,
    MAX_MESSAGE_BYTES,
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
    UnsupportedVersion,
)
from lilypad_p2p.wire._fields import (
    ADDRESS,
    expect_exact_keys,
    expect_map,
    require_address,
    require_timestamp,
)
from lilypad_p2p.wire._ids import content_id
from lilypad_p2p.wire._schemas import MESSAGE_TYPES, Message, message_from_wire

ENVELOPE_VERSION = 1
EIP191_PREFIX = b"\x19"
# Our EIP-191 version byte ("L"); registered versions are 0x00, 0x01 (EIP-712) and 0x45.
LILYPAD_EIP191_VERSION = b"\x4c"
SIGNATURE_DOMAIN = "lilypad-p2p/envelope/1/"
SIGNATURE_BYTES = 65
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N = SECP256K1_N // 2
_ENVELOPE_KEYS = frozenset({"body", "published_at", "signature", "signer", "v"})


def _packed(value: object) -> bytes:
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return packed


# Canonical maps are built by concatenation around the body's cached canonical bytes (keys in
# sorted order); tests check the result equals `encode(...)` of the same map.
_SIGNED_CONTENT_HEADER = b"\x82" + _packed("body")
_PUBLISHED_AT_KEY = _packed("published_at")
_ENVELOPE_HEADER = b"\x85" + _packed("body")
_ENVELOPE_TAIL = _packed("v") + _packed(ENVELOPE_VERSION)


def envelope_digest(body: Message, published_at_ms: int) -> bytes:
    """The 32 bytes an envelope's signature signs (see the module docstring)."""
    signed_content = (
        _SIGNED_CONTENT_HEADER + body.canonical_bytes + _PUBLISHED_AT_KEY + _packed(published_at_ms)
    )
    domain = (SIGNATURE_DOMAIN + body.TYPE).encode("ascii")
    return keccak(EIP191_PREFIX + LILYPAD_EIP191_VERSION + domain + b"\x00" + signed_content)


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedEnvelope:
    """A message signed by `signer` at `published_at` (ms).

    Constructing one checks shapes only; `open_envelope` checks the signature and the clock.
    """

    signer: str
    published_at: int
    body: Message
    signature: bytes
    _encoded: bytes = field(default=b"", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        require_address("signer", self.signer)
        require_timestamp("published_at", self.published_at)
        if type(self.body) not in MESSAGE_TYPES.values():
            raise InvalidMessage(f"body must be a message, got {type(self.body).__name__}")
        if type(self.signature) is not bytes or len(self.signature) != SIGNATURE_BYTES:
            raise InvalidMessage(f"signature must be {SIGNATURE_BYTES} bytes")
        # An honest owner signs the body before publishing it, on the same clock.
        if self.published_at < self.body.created_at:
            raise InvalidMessage("published_at is before the body's created_at")

    def _tail(self) -> bytes:
        """The canonical encoding after the body: the other fields, in key order."""
        return (
            _PUBLISHED_AT_KEY
            + _packed(self.published_at)
            + _packed("signature")
            + _packed(self.signature)
            + _packed("signer")
            + _packed(ADDRESS.to_wire(self.signer))
            + _ENVELOPE_TAIL
        )

    def _received_as(self, data: bytes) -> None:
        """Take `data`, the bytes this envelope was decoded from, as its encoding and the
        body's part of it as the body's, so that nothing received is encoded again.

        They are the bytes encoding would give: `decode` accepts only canonical bytes, and
        each field's `to_wire` gives back exactly what its `from_wire` accepted (wei amounts,
        addresses and sets have one wire form each); tests compare the two.
        """
        tail = self._tail()
        body_end = len(data) - len(tail)
        if not (
            data.startswith(_ENVELOPE_HEADER)
            and data.endswith(tail)
            and body_end > len(_ENVELOPE_HEADER)
        ):
            raise NonCanonicalEncoding("envelope: bytes are not its canonical encoding")
        object.__setattr__(self, "_encoded", data)
        self.body._received_as(data[len(_ENVELOPE_HEADER) : body_end])

    def to_wire(self) -> dict[str, object]:
        return {
            "body": self.body.to_wire(),
            "published_at": self.published_at,
            "signature": self.signature,
            "signer": ADDRESS.to_wire(self.signer),
            "v": ENVELOPE_VERSION,
        }

    @classmethod
    def from_wire(cls, raw: object) -> SignedEnvelope:
        """Build from the decoded wire map; any defect raises `MalformedMessage`."""
        wire = expect_map(raw, "envelope")
        expect_exact_keys(wire, _ENVELOPE_KEYS, "envelope")
        if type(wire["v"]) is not int or wire["v"] != ENVELOPE_VERSION:
            raise UnsupportedVersion(f"envelope version {wire['v']!r} (this node speaks 1)")
        signer = ADDRESS.from_wire(wire["signer"], "envelope.signer")
        body = message_from_wire(wire["body"])
        unchecked: dict[str, Any] = wire  # __post_init__ checks each field's type and value
        try:
            return cls(
                signer=signer,
                published_at=unchecked["published_at"],
                body=body,
                signature=unchecked["signature"],
            )
        except InvalidMessage as exc:
            raise MalformedMessage(f"envelope: {exc}") from exc

    def encode(self) -> bytes:
        """The canonical bytes to publish (built on first use around the body's)."""
        encoded = self._encoded
        if not encoded:
            encoded = _ENVELOPE_HEADER + self.body.canonical_bytes + self._tail()
            object.__setattr__(self, "_encoded", encoded)
        return encoded

    @property
    def envelope_id(self) -> str:
        """CID of the whole signed envelope: what replay guards and seen-sets remember."""
        return content_id(self.encode())

    @property
    def offer_id(self) -> str:
        """The body's CID (stays the same when the owner re-publishes the body)."""
        return self.body.cid


def sign_envelope(body: Message, private_key: PrivateKey, published_at_ms: int) -> SignedEnvelope:
    """Sign `body` as published at `published_at_ms` with `private_key`.

    Raises:
        InvalidMessage: `private_key` is not the body's owner (every receiver would refuse it),
            or `published_at_ms` is not a valid timestamp at or after the body's `created_at`.
    """
    signer = private_key.public_key.to_checksum_address()
    if signer != body.owner_address:
        raise InvalidMessage(
            f"{body.TYPE} is owned by {body.owner_address}; refusing to sign it as {signer}"
        )
    require_timestamp("published_at", published_at_ms)
    signature = private_key.sign_msg_hash(envelope_digest(body, published_at_ms))
    return SignedEnvelope(
        signer=signer,
        published_at=published_at_ms,
        body=body,
        signature=signature.to_bytes(),
    )


def open_envelope(data: bytes, *, now_ms: int) -> SignedEnvelope:
    """Accept `data` as a signed envelope at local time `now_ms`, or raise a `WireError`.

    Checks, cheapest first: size; canonical decoding and strict schema; the body has not
    expired; `published_at` and `created_at` are at most `MAX_CLOCK_SKEW_MS` ahead;
    `published_at` is at most `ENVELOPE_MAX_AGE_MS` old; the signature (low-s) recovers to
    `signer`; `signer` owns the body. The clock checks come before the signature so that an old
    or expired message costs no signature recovery. Replays inside the age window are the
    replay guard's job.

    Raises:
        OversizedMessage, MalformedMessage (incl. NonCanonicalEncoding, UnsupportedVersion),
        BadSignature, SignerNotOwner, ExpiredMessage, FutureDatedMessage, StaleMessage.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedMessage(f"expected bytes, got {type(data).__name__}")
    if len(data) > MAX_MESSAGE_BYTES:
        raise OversizedMessage(f"{len(data)} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")
    data = bytes(data)
    envelope = SignedEnvelope.from_wire(decode(data))
    envelope._received_as(data)
    check_freshness(envelope, now_ms=now_ms)
    verify_signature(envelope)
    body = envelope.body
    if body.owner_address != envelope.signer:
        raise SignerNotOwner(
            f"{body.TYPE} owned by {body.owner_address} but signed by {envelope.signer}"
        )
    return envelope


def verify_signature(envelope: SignedEnvelope) -> None:
    """Raise `BadSignature` unless the low-s signature recovers to `envelope.signer`."""
    raw = envelope.signature
    r = int.from_bytes(raw[:32], "big")
    s = int.from_bytes(raw[32:64], "big")
    if not (0 < r < SECP256K1_N and 0 < s <= _HALF_N and raw[64] in (0, 1)):
        raise BadSignature("signature is out of range or not low-s")
    digest = envelope_digest(envelope.body, envelope.published_at)
    # libsecp256k1 directly (what eth_keys calls underneath): every node recovers every
    # gossiped envelope, and eth_keys' objects around the call cost half as much again.
    try:
        point = CurvePublicKey.from_signature_and_message(raw, digest, hasher=None)
    except ValueError as exc:
        raise BadSignature(f"signature does not recover: {exc}") from exc
    if keccak(point.format(compressed=False)[1:])[-20:] != ADDRESS.to_wire(envelope.signer):
        raise BadSignature(f"signature is not by {envelope.signer}")


def check_freshness(envelope: SignedEnvelope, *, now_ms: int) -> None:
    """Raise `ExpiredMessage`, `FutureDatedMessage` or `StaleMessage` if the clock says so.

    A body with `expires_at` is valid while `now_ms < expires_at`.
    """
    body = envelope.body
    expires_at = getattr(body, "expires_at", None)
    if expires_at is not None and now_ms >= expires_at:
        raise ExpiredMessage(f"{body.TYPE} expired at {expires_at} (now {now_ms})")
    # created_at <= published_at holds by construction, so this bounds created_at too.
    if envelope.published_at > now_ms + MAX_CLOCK_SKEW_MS:
        raise FutureDatedMessage(
            f"published_at {envelope.published_at} is more than {MAX_CLOCK_SKEW_MS} ms after "
            f"now ({now_ms})"
        )
    if envelope.published_at < now_ms - ENVELOPE_MAX_AGE_MS:
        raise StaleMessage(
            f"published_at {envelope.published_at} is more than {ENVELOPE_MAX_AGE_MS} ms old"
        )
