"""Sealing: anonymous public-key encryption of job inputs and outputs (pynacl SealedBox).

The job creator seals inputs to the provider's X25519 key; the provider seals outputs back to the
job creator's. A SealedBox hides the sender, which is fine here: who sent the sealed bytes is
established by the signed deal and stream, not by the ciphertext. Sealed bytes are
`ephemeral public key (32) || XSalsa20-Poly1305 box`, so any change to them fails to open.
"""

from __future__ import annotations

from typing import TypeVar

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

from lilypad_p2p.exec._errors import UnsealFailed

X25519_KEY_BYTES = 32

PublicKeyLike = PublicKey | bytes
PrivateKeyLike = PrivateKey | bytes
_Key = TypeVar("_Key", PublicKey, PrivateKey)


def _as_key(key: object, kind: type[_Key]) -> _Key:
    """Accept a pynacl key of `kind` or its raw 32 bytes."""
    if isinstance(key, kind):
        return key
    if isinstance(key, bytes | bytearray) and len(key) == X25519_KEY_BYTES:
        return kind(bytes(key))
    raise TypeError(f"expected an X25519 {kind.__name__} or {X25519_KEY_BYTES} raw bytes")


def as_public_key(key: PublicKeyLike) -> PublicKey:
    """Accept a pynacl `PublicKey` or its raw 32 bytes."""
    return _as_key(key, PublicKey)


def as_private_key(key: PrivateKeyLike) -> PrivateKey:
    """Accept a pynacl `PrivateKey` or its raw 32 bytes."""
    return _as_key(key, PrivateKey)


def seal_for(recipient: PublicKeyLike, plaintext: bytes) -> bytes:
    """Encrypt `plaintext` so only the holder of `recipient`'s private key can read it."""
    return SealedBox(as_public_key(recipient)).encrypt(plaintext)


def unseal(private_key: PrivateKeyLike, sealed: bytes) -> bytes:
    """Open bytes sealed with `seal_for` to this private key's public key.

    Raises:
        UnsealFailed: the bytes were tampered with, truncated, or sealed to another key.
    """
    try:
        return SealedBox(as_private_key(private_key)).decrypt(bytes(sealed))
    except CryptoError as exc:
        raise UnsealFailed(
            "sealed bytes do not open with this key (tampered, truncated or sealed to another key)"
        ) from exc
