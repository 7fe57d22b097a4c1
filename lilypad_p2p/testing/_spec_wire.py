"""The wire format rebuilt from docs/WIRE.md alone, for tests that act as an outside implementer.

Nothing here imports `lilypad_p2p.wire`, `net` or `chain`: only msgpack, coincurve, hashlib and
a keccak. Tests build messages with it and check them against the test vectors and against a
real node, so a rule that lives only in our code (and not in the spec) makes them fail.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import coincurve
import msgpack
from eth_hash.auto import keccak

ENVELOPE_VERSION = 1
SCHEMA_VERSION = 1
_UINT64_LIMIT = 1 << 64
_CID_PREFIX = bytes([0x01, 0x55, 0x12, 0x20])
_PEER_ID_PREFIX = bytes([0x00, 0x25, 0x08, 0x02, 0x12, 0x21])
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
MESSAGE_ID_BYTES = 20


def _prepared(value: Any) -> Any:
    """WIRE.md "Canonical msgpack": sorted map keys, integers >= 2**64 as 32-byte bin."""
    if isinstance(value, dict):
        return {key: _prepared(value[key]) for key in sorted(value)}
    if isinstance(value, list | tuple):
        return [_prepared(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool) and value >= _UINT64_LIMIT:
        return value.to_bytes(32, "big")
    return value


def canonical(value: Any) -> bytes:
    # msgpack-python's packer already writes every value in its shortest form.
    return msgpack.packb(_prepared(value), use_bin_type=True)


def address_bytes(address: str) -> bytes:
    return bytes.fromhex(address.removeprefix("0x"))


def address_of(private_key: bytes) -> str:
    """0x + hex of the last 20 bytes of keccak256(uncompressed public key without 0x04)."""
    public = coincurve.PrivateKey(private_key).public_key.format(compressed=False)[1:]
    return "0x" + keccak(public)[-20:].hex()


def peer_id_of(private_key: bytes) -> str:
    compressed = coincurve.PrivateKey(private_key).public_key.format(compressed=True)
    data = _PEER_ID_PREFIX + compressed
    number = int.from_bytes(data, "big")
    chars = []
    while number:
        number, remainder = divmod(number, 58)
        chars.append(_BASE58[remainder])
    zeros = len(data) - len(data.lstrip(b"\x00"))
    return "1" * zeros + "".join(reversed(chars))


def content_id(data: bytes) -> str:
    encoded = base64.b32encode(_CID_PREFIX + hashlib.sha256(data).digest()).decode()
    return "b" + encoded.lower().rstrip("=")


def gossip_message_id(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()[:MESSAGE_ID_BYTES]


def resource_offer_body(
    *,
    market: str,
    provider: str,
    spec: dict[str, int],
    modules: list[str],
    price_per_job_wei: int,
    collateral_wei: int,
    trusted_mediators: list[str],
    chain_ids: list[int],
    created_at: int,
    expires_at: int,
    nonce: int,
) -> dict[str, Any]:
    """A `resource_offer` body map exactly as WIRE.md's field table lists it."""
    return {
        "v": SCHEMA_VERSION,
        "type": "resource_offer",
        "market": market,
        "provider": address_bytes(provider),
        "spec": dict(spec),
        "modules": sorted(modules),
        "price_per_job_wei": price_per_job_wei,
        "collateral_wei": collateral_wei,
        "trusted_mediators": sorted(address_bytes(m) for m in trusted_mediators),
        "chain_ids": sorted(chain_ids),
        "created_at": created_at,
        "expires_at": expires_at,
        "nonce": nonce,
    }


def cancel_body(*, market: str, offer_cid: str, owner: str, created_at: int, nonce: int) -> dict:
    return {
        "v": SCHEMA_VERSION,
        "type": "cancel",
        "market": market,
        "offer_cid": offer_cid,
        "owner": address_bytes(owner),
        "created_at": created_at,
        "nonce": nonce,
    }


def envelope_digest(body: dict[str, Any], published_at: int) -> bytes:
    domain = ("lilypad-p2p/envelope/1/" + body["type"]).encode("ascii")
    signed = canonical({"body": body, "published_at": published_at})
    return keccak(b"\x19\x4c" + domain + b"\x00" + signed)


def sign(private_key: bytes, digest: bytes) -> bytes:
    """r || s || v with v in {0, 1}; libsecp256k1 always produces low s."""
    return coincurve.PrivateKey(private_key).sign_recoverable(digest, hasher=None)


def envelope(body: dict[str, Any], private_key: bytes, published_at: int) -> bytes:
    return canonical(
        {
            "body": body,
            "published_at": published_at,
            "signature": sign(private_key, envelope_digest(body, published_at)),
            "signer": address_bytes(address_of(private_key)),
            "v": ENVELOPE_VERSION,
        }
    )


def stream_frame(message: dict[str, Any]) -> bytes:
    body = canonical(message)
    return len(body).to_bytes(4, "big") + body
