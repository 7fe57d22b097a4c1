"""Content IDs and peer-ID-to-address mapping, both pure.

Content IDs are CIDv1, multicodec `raw` (0x55: the ID addresses the exact canonical msgpack
bytes), multihash sha2-256, rendered as base32 lower case without padding (`bafkrei...`). They are
built here byte by byte because multiformats takes ~400 µs per CID; the unit tests check that
the result is identical to multiformats'.

A secp256k1 libp2p peer ID is an identity multihash of the protobuf-encoded compressed public
key, so the Ethereum address of its owner can be computed from the peer ID alone.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re

from eth_keys.datatypes import PublicKey
from eth_keys.exceptions import ValidationError as EthKeysValidationError

_CID_VERSION_1 = 0x01
_MULTICODEC_RAW = 0x55
_MULTIHASH_SHA2_256 = 0x12
_SHA2_256_LENGTH = 32
_CID_PREFIX = bytes([_CID_VERSION_1, _MULTICODEC_RAW, _MULTIHASH_SHA2_256, _SHA2_256_LENGTH])
# The rendered form, exactly: "b", then base32 of 0x01 0x55 0x12 0x20 ("afkrei" and 2 zero bits,
# so the next character is a-h), then the digest, whose last character carries 2 zero pad bits.
_CID_TEXT = re.compile(r"bafkrei[a-h][a-z2-7]{50}[aeimquy4]")

# Identity multihash (code 0x00, length 37) of the libp2p protobuf PublicKey
# {Type: Secp256k1 (field 1 = 2), Data: (field 2, 33 bytes) compressed point}.
_SECP256K1_PEER_ID_PREFIX = bytes([0x00, 0x25, 0x08, 0x02, 0x12, 0x21])
_COMPRESSED_KEY_LENGTH = 33
_PEER_ID_CACHE_SIZE = 4096

_BASE58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BASE58_INDEX = {char: index for index, char in enumerate(_BASE58_ALPHABET)}
# A secp256k1 peer ID is 39 bytes: 53-54 base58 characters. Longer input is not one.
_MAX_PEER_ID_TEXT = 64


def content_id(data: bytes) -> str:
    """The CIDv1 (raw, sha2-256, base32) of `data`."""
    return _render_content_id(hashlib.sha256(data).digest())


def is_content_id(text: object) -> bool:
    """True if `text` is a CID exactly as `content_id` renders one."""
    return isinstance(text, str) and _CID_TEXT.fullmatch(text) is not None


def _render_content_id(digest: bytes) -> str:
    return "b" + base64.b32encode(_CID_PREFIX + digest).decode("ascii").lower().rstrip("=")


def base58_decode(text: str) -> bytes:
    """Decode Bitcoin-alphabet base58 (as libp2p peer IDs use). Raises ValueError."""
    number = 0
    for char in text:
        index = _BASE58_INDEX.get(char)
        if index is None:
            raise ValueError(f"{char!r} is not a base58 character")
        number = number * 58 + index
    leading_zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\x00" * leading_zeros + body


def base58_encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    chars = []
    while number:
        number, remainder = divmod(number, 58)
        chars.append(_BASE58_ALPHABET[remainder])
    leading_zeros = len(data) - len(data.lstrip(b"\x00"))
    return "1" * leading_zeros + "".join(reversed(chars))


@functools.lru_cache(maxsize=_PEER_ID_CACHE_SIZE)
def address_from_peer_id_bytes(peer_id: bytes) -> str:
    """EIP-55 address of the secp256k1 key inside a libp2p peer ID (identity multihash).

    Cached: gossip validators call it for every message, from a handful of peers.

    Raises:
        ValueError: not an identity-multihash secp256k1 peer ID, or not a point on the curve.
    """
    if not isinstance(peer_id, bytes):
        raise ValueError(f"peer ID must be bytes, got {type(peer_id).__name__}")
    expected_length = len(_SECP256K1_PEER_ID_PREFIX) + _COMPRESSED_KEY_LENGTH
    if len(peer_id) != expected_length or not peer_id.startswith(_SECP256K1_PEER_ID_PREFIX):
        raise ValueError("not a secp256k1 identity-multihash peer ID")
    try:
        public_key = PublicKey.from_compressed_bytes(peer_id[len(_SECP256K1_PEER_ID_PREFIX) :])
    except (EthKeysValidationError, ValueError) as exc:
        raise ValueError(f"peer ID holds an invalid secp256k1 key: {exc}") from exc
    return public_key.to_checksum_address()


def address_from_peer_id_text(peer_id: str) -> str:
    """Like `address_from_peer_id_bytes`, for the base58 text form (`16Uiu2...`)."""
    if not isinstance(peer_id, str) or len(peer_id) > _MAX_PEER_ID_TEXT:
        raise ValueError("not a base58 secp256k1 peer ID")
    return address_from_peer_id_bytes(base58_decode(peer_id))
