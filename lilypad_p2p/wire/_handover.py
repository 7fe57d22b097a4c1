"""A key hand-over: the retired key's signature naming the key that replaced it.

After `keys rotate` the node's NodeRecord carries its predecessor's address and this signature,
so peers learn the new identity from the network itself (the contract learns it from
`rotateKey`). Like every signature of the node key, it is domain-separated (EIP-191 version
0x4c, then a hand-over domain) and never a bare keccak of bytes someone else chose:

    digest = keccak256(0x19 || 0x4c || "lilypad-p2p/key-handover/1" || 0x00 ||
                       predecessor (20 bytes) || successor (20 bytes))

The signature is r || s || v (65 bytes, low s, v in {0, 1}), as in envelopes.
"""

from __future__ import annotations

from eth_hash.auto import keccak
from eth_keys.datatypes import PrivateKey, Signature
from eth_keys.exceptions import BadSignature as EthKeysBadSignature
from eth_keys.exceptions import ValidationError as EthKeysValidationError

from lilypad_p2p.wire._errors import BadSignature
from lilypad_p2p.wire._fields import address_to_wire

HANDOVER_DOMAIN = b"lilypad-p2p/key-handover/1"
HANDOVER_SIGNATURE_BYTES = 65
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def handover_digest(predecessor: str, successor: str) -> bytes:
    """What the predecessor signs to name its successor."""
    return keccak(
        b"\x19\x4c" + HANDOVER_DOMAIN + b"\x00"
        + address_to_wire(predecessor) + address_to_wire(successor)
    )


def sign_handover(predecessor_key: PrivateKey, successor: str) -> bytes:
    """The retired key's signature naming `successor` (checksummed address)."""
    predecessor = predecessor_key.public_key.to_checksum_address()
    return predecessor_key.sign_msg_hash(handover_digest(predecessor, successor)).to_bytes()


def verify_handover(predecessor: str, successor: str, signature: bytes) -> None:
    """Raise `BadSignature` unless `signature` is `predecessor`'s hand-over to `successor`."""
    if type(signature) is not bytes or len(signature) != HANDOVER_SIGNATURE_BYTES:
        raise BadSignature(f"a hand-over signature is {HANDOVER_SIGNATURE_BYTES} bytes")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    if not (0 < r < _SECP256K1_N and 0 < s <= _SECP256K1_N // 2 and signature[64] in (0, 1)):
        raise BadSignature("hand-over signature is out of range or not low-s")
    try:
        recovered = Signature(signature).recover_public_key_from_msg_hash(
            handover_digest(predecessor, successor)
        )
    except (EthKeysBadSignature, EthKeysValidationError, ValueError) as exc:
        raise BadSignature(f"hand-over signature does not recover: {exc}") from exc
    if recovered.to_canonical_address() != address_to_wire(predecessor):
        raise BadSignature(f"the hand-over is not signed by {predecessor}")
