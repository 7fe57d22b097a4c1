"""Errors of the wire package.

`WireError` and its subclasses mean a peer sent bytes we refuse: they are `PeerMisbehaved`, so
callers count them against the sender and never crash. Building or encoding a bad message
ourselves is a local bug and raises `InvalidMessage` or `UnencodableValue` instead.
"""

from lilypad_p2p.errors import LilypadError, PeerMisbehaved


class WireError(PeerMisbehaved):
    """Bytes from a peer are not an acceptable lilypad-p2p message."""


class MalformedMessage(WireError):
    """Not canonical msgpack, or not a valid message of a known schema."""


class NonCanonicalEncoding(MalformedMessage):
    """Valid msgpack, but not the one canonical encoding of its value."""


class UnsupportedVersion(MalformedMessage):
    """A schema version (`v`) this node does not speak."""


class OversizedMessage(WireError):
    """Longer than the size limit; refused before any parsing."""


class BadSignature(WireError):
    """The signature is invalid, not low-s, or does not recover to the envelope's signer."""


class SignerNotOwner(WireError):
    """A correctly signed envelope whose body belongs to someone else."""


class ExpiredMessage(WireError):
    """The body's `expires_at` has passed."""


class FutureDatedMessage(WireError):
    """`published_at` or `created_at` lies further ahead than the allowed clock skew."""


class StaleMessage(WireError):
    """`published_at` is older than the replay window (`ENVELOPE_MAX_AGE_MS`)."""


class InvalidMessage(LilypadError, ValueError):
    """We tried to build a message the schema forbids (our own bug, not a peer's)."""


class UnencodableValue(LilypadError, ValueError):
    """We asked the codec to encode a value the canonical format has no encoding for."""
