"""A NodeRecord naming its predecessor: the hand-over vector from the spec, forgeries refused."""

import dataclasses
import json
from pathlib import Path

import pytest
from eth_hash.auto import keccak
from eth_keys.datatypes import PrivateKey

from lilypad_p2p import wire
from lilypad_p2p.identity import Identity

VECTORS = json.loads((Path(__file__).resolve().parents[3] / "docs" / "wire-vectors.json")
                     .read_text())
HANDOVER = VECTORS["key_handover"]


def test_the_vector_from_the_spec_alone():
    # WIRE.md: keccak256(0x19 || 0x4c || "lilypad-p2p/key-handover/1" || 0x00 || old || new)
    digest = keccak(b"\x19\x4c" + b"lilypad-p2p/key-handover/1" + b"\x00"
                    + bytes.fromhex(HANDOVER["predecessor"][2:])
                    + bytes.fromhex(HANDOVER["successor"][2:]))
    assert digest.hex() == HANDOVER["digest_hex"]
    key = PrivateKey(bytes.fromhex(HANDOVER["predecessor_private_key"]))
    signature = key.sign_msg_hash(digest).to_bytes()
    assert signature.hex() == HANDOVER["signature_hex"]
    wire.verify_handover(HANDOVER["predecessor"], HANDOVER["successor"], signature)


def _record(identity: Identity, **changes) -> wire.NodeRecord:
    base = wire.NodeRecord(
        address=identity.address, peer_id=str(identity.peer_id), roles=("provider",),
        sealing_public_key=identity.sealing_public_key, markets=("cpu",),
        listen_addrs=("/ip4/127.0.0.1/tcp/4001",), created_at=1_767_225_600_000,
        expires_at=1_767_225_600_000 + 60_000, nonce=1,
    )
    return dataclasses.replace(base, **changes)


def test_a_record_carries_its_predecessors_hand_over_across_the_wire():
    old, new = PrivateKey(b"\x05" * 32), Identity.generate()
    signature = wire.sign_handover(old, new.address)
    record = _record(new, predecessor=old.public_key.to_checksum_address(),
                     predecessor_signature=signature)
    again = wire.message_from_wire(wire.decode(record.canonical_bytes))
    assert again == record and again.predecessor == old.public_key.to_checksum_address()


@pytest.mark.parametrize("forgery", ["other_signer", "other_successor", "self", "no_signature",
                                     "signature_without_predecessor", "high_s"])
def test_forged_hand_overs_are_refused(forgery):
    old, thief, new = PrivateKey(b"\x05" * 32), PrivateKey(b"\x06" * 32), Identity.generate()
    predecessor = old.public_key.to_checksum_address()
    changes = {
        "other_signer": dict(predecessor=predecessor,
                             predecessor_signature=wire.sign_handover(thief, new.address)),
        "other_successor": dict(predecessor=predecessor, predecessor_signature=wire.sign_handover(
            old, Identity.generate().address)),
        "self": dict(predecessor=new.address, predecessor_signature=b"\x01" * 65),
        "no_signature": dict(predecessor=predecessor, predecessor_signature=b""),
        "signature_without_predecessor": dict(predecessor_signature=wire.sign_handover(
            old, new.address)),
        "high_s": dict(predecessor=predecessor, predecessor_signature=_high_s(
            wire.sign_handover(old, new.address))),
    }[forgery]
    with pytest.raises(wire.InvalidMessage):
        _record(new, **changes)


def _high_s(signature: bytes) -> bytes:
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    s = int.from_bytes(signature[32:64], "big")
    return signature[:32] + (n - s).to_bytes(32, "big") + bytes([signature[64] ^ 1])
