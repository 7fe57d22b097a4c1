"""The test vectors of docs/WIRE.md (docs/wire-vectors.json) against our code and against an
implementation written from the spec alone (`lilypad_p2p.testing._spec_wire`)."""

import hashlib
import json
import re
from pathlib import Path

import pytest
from eth_account import Account
from eth_keys.datatypes import PrivateKey

from lilypad_p2p import wire
from lilypad_p2p.chain import Deal
from lilypad_p2p.chain._typed import (
    Acceptance,
    Domain,
    Outcome,
    ResultCommitment,
    Verdict,
    sign_typed,
)
from lilypad_p2p.net._levers import message_id
from lilypad_p2p.net._streams import decode_body, encode_frame, read_frame
from lilypad_p2p.net._validation import topic_for
from lilypad_p2p.roles._terms import deal_from_wire
from lilypad_p2p.testing import _spec_wire as spec
from lilypad_p2p.wire import deal_to_wire

DOCS = Path(__file__).resolve().parents[3] / "docs"
VECTORS = json.loads((DOCS / "wire-vectors.json").read_text())
WIRE_MD = (DOCS / "WIRE.md").read_text()
KEY = bytes.fromhex(VECTORS["private_key"])
MESSAGES = {entry["type"]: entry for entry in VECTORS["messages"]}
EIP712 = VECTORS["eip712"]


class _Msg:
    """The one field of a pubsub message `message_id` reads."""

    def __init__(self, data: bytes) -> None:
        self.data = data


def test_wire_md_names_the_vector_file_and_quotes_it_faithfully():
    assert "wire-vectors.json" in WIRE_MD
    quoted = re.findall(r"`([0-9a-f]{40,})`", WIRE_MD)
    everything = json.dumps(VECTORS)
    assert quoted, "WIRE.md quotes no vector"
    for hex_text in quoted:
        assert hex_text in everything, f"WIRE.md quotes {hex_text[:16]}..., not in the vectors"


def test_key_address_and_peer_id():
    key = PrivateKey(KEY)
    assert key.public_key.to_compressed_bytes().hex() == VECTORS["public_key_compressed"]
    assert key.public_key.to_checksum_address() == VECTORS["address"]
    assert wire.address_from_peer_id_text(VECTORS["peer_id"]) == VECTORS["address"]
    assert spec.address_of(KEY) == VECTORS["address"].lower()
    assert spec.peer_id_of(KEY) == VECTORS["peer_id"]


@pytest.mark.parametrize("type_name", sorted(MESSAGES))
def test_message_vector_against_our_code(type_name):
    vector = MESSAGES[type_name]
    body_bytes = bytes.fromhex(vector["body_hex"])
    body = wire.message_from_wire(wire.decode(body_bytes))
    assert type_name == body.TYPE
    assert body.canonical_bytes == body_bytes
    assert body.cid == vector["body_cid"]
    published_at = vector["published_at"]
    assert wire.envelope_digest(body, published_at).hex() == vector["digest_hex"]
    signed_content = bytes.fromhex(vector["signed_content_hex"])
    assert wire.encode({"body": body.to_wire(), "published_at": published_at}) == signed_content

    envelope = wire.sign_envelope(body, PrivateKey(KEY), published_at)
    assert envelope.signature.hex() == vector["signature_hex"]
    assert envelope.encode().hex() == vector["envelope_hex"]
    assert envelope.envelope_id == vector["envelope_id"]

    opened = wire.open_envelope(bytes.fromhex(vector["envelope_hex"]), now_ms=published_at)
    assert opened.signer == VECTORS["address"]
    assert message_id(_Msg(envelope.encode())).hex() == vector["gossip_message_id_hex"]
    assert str(topic_for(opened)) == vector["topic"]
    if type_name == "match_proposal":
        assert body.matching_id == vector["matching_id"]


@pytest.mark.parametrize("type_name", sorted(MESSAGES))
def test_message_vector_against_the_spec_implementation(type_name):
    """Digest, signature, envelope, IDs from the spec alone, given the body map."""
    vector = MESSAGES[type_name]
    body_bytes = bytes.fromhex(vector["body_hex"])
    body_map = spec.msgpack.unpackb(body_bytes, raw=False)
    assert spec.canonical(body_map) == body_bytes
    assert spec.content_id(body_bytes) == vector["body_cid"]
    published_at = vector["published_at"]
    assert spec.envelope_digest(body_map, published_at).hex() == vector["digest_hex"]
    envelope = spec.envelope(body_map, KEY, published_at)
    assert envelope.hex() == vector["envelope_hex"]
    assert spec.content_id(envelope) == vector["envelope_id"]
    assert spec.gossip_message_id(envelope).hex() == vector["gossip_message_id_hex"]


def test_resource_offer_built_from_the_field_table():
    """Every field of the ResourceOffer vector, typed as WIRE.md's table says."""
    vector = MESSAGES["resource_offer"]
    body = spec.resource_offer_body(
        market="cpu",
        provider=VECTORS["address"],
        spec={"milli_cpu": 2000, "ram_mb": 4096, "disk_mb": 10240, "gpu_count": 1,
              "gpu_vram_mb": 8192},
        modules=["python:3.11", "cowsay:v0.0.4"],
        price_per_job_wei=10**15,
        collateral_wei=2**70,
        trusted_mediators=["0x" + "22" * 20, "0x" + "11" * 20],
        chain_ids=[31337, 1],
        created_at=1767225600000,
        expires_at=1767225600000 + 3_600_000,
        nonce=7,
    )
    assert spec.canonical(body).hex() == vector["body_hex"]
    cancel = spec.cancel_body(market="cpu", offer_cid=vector["body_cid"],
                              owner=VECTORS["address"], created_at=1767225602000, nonce=8)
    assert spec.canonical(cancel).hex() == MESSAGES["cancel"]["body_hex"]


def test_non_canonical_forms_of_a_vector_are_refused():
    vector = MESSAGES["resource_offer"]
    good = bytes.fromhex(vector["envelope_hex"])
    raw = spec.msgpack.unpackb(good, raw=False)
    # The envelope's keys in insertion order instead of sorted: same value, other bytes.
    unsorted = spec.msgpack.packb(dict(reversed(list(raw.items()))), use_bin_type=True)
    with pytest.raises(wire.NonCanonicalEncoding):
        wire.open_envelope(unsorted, now_ms=vector["published_at"])
    # v = 27 (the EIP-712/Ethereum convention) in an envelope signature is refused.
    eth_v = {**raw, "signature": raw["signature"][:64] + bytes([27])}
    with pytest.raises(wire.BadSignature):
        wire.open_envelope(spec.canonical(eth_v), now_ms=vector["published_at"])
    # The envelope version key is required.
    without_v = {key: value for key, value in raw.items() if key != "v"}
    with pytest.raises(wire.MalformedMessage):
        wire.open_envelope(spec.canonical(without_v), now_ms=vector["published_at"])


def _deal() -> Deal:
    values = dict(EIP712["deal"])
    for name in ("job_spec_hash", "module_hash", "salt"):
        values[name] = bytes.fromhex(values[name])
    values["mediators"] = tuple(values["mediators"])
    return Deal(**values)


def test_eip712_vectors():
    domain = Domain(chain_id=EIP712["chain_id"], verifying_contract=EIP712["verifying_contract"])
    deal = _deal()
    account = Account.from_key(KEY)
    assert domain.separator.hex() == EIP712["domain_separator_hex"]
    assert deal.struct_hash().hex() == EIP712["deal_struct_hash_hex"]
    assert deal.deal_id(domain).hex() == EIP712["deal_id_hex"]
    assert sign_typed(deal, domain, account).hex() == EIP712["deal_signature_hex"]
    deal_id = bytes.fromhex(EIP712["deal_id_hex"])
    result_hash = bytes.fromhex(EIP712["result_hash_hex"])
    assert result_hash == hashlib.sha256(b"result").digest()
    acceptance = Acceptance(deal_id=deal_id, result_hash=result_hash)
    assert domain.digest(acceptance.struct_hash()).hex() == EIP712["acceptance_digest_hex"]
    assert sign_typed(acceptance, domain, account).hex() == EIP712["acceptance_signature_hex"]
    commitment = ResultCommitment(deal_id=deal_id, result_hash=result_hash)
    assert domain.digest(commitment.struct_hash()).hex() == EIP712["result_commitment_digest_hex"]
    verdict = Verdict(deal_id=deal_id, outcome=Outcome(EIP712["verdict_outcome"]),
                      result_hash=result_hash)
    assert domain.digest(verdict.struct_hash()).hex() == EIP712["verdict_digest_hex"]
    assert sign_typed(verdict, domain, account).hex() == EIP712["verdict_signature_hex"]
    wire_map = bytes.fromhex(EIP712["deal_wire_map_hex"])
    assert wire.encode(deal_to_wire(deal)) == wire_map
    assert deal_from_wire(wire.decode(wire_map)) == deal


def test_eip712_vectors_against_eth_account_typed_data():
    """The deal digest by eth-account's generic EIP-712 encoder, from WIRE.md's type strings."""
    from eth_account.messages import encode_typed_data

    deal = EIP712["deal"]
    message = {
        "jobCreator": deal["job_creator"], "provider": deal["provider"],
        "payment": deal["payment"], "collateral": deal["collateral"],
        "mediationFee": deal["mediation_fee"], "mediators": deal["mediators"],
        "threshold": deal["threshold"], "resultDeadline": deal["result_deadline"],
        "acceptanceWindow": deal["acceptance_window"],
        "mediationWindow": deal["mediation_window"],
        "job": {"jobSpecHash": bytes.fromhex(deal["job_spec_hash"]),
                "moduleHash": bytes.fromhex(deal["module_hash"]),
                "salt": bytes.fromhex(deal["salt"])},
    }
    types = {
        "Deal": [{"name": n, "type": t} for t, n in (
            ("address", "jobCreator"), ("address", "provider"), ("uint128", "payment"),
            ("uint128", "collateral"), ("uint128", "mediationFee"), ("address[]", "mediators"),
            ("uint8", "threshold"), ("uint64", "resultDeadline"), ("uint64", "acceptanceWindow"),
            ("uint64", "mediationWindow"), ("Job", "job"))],
        "Job": [{"name": n, "type": "bytes32"} for n in ("jobSpecHash", "moduleHash", "salt")],
    }
    domain = {"name": "LilypadSettlement", "version": "1", "chainId": EIP712["chain_id"],
              "verifyingContract": EIP712["verifying_contract"]}
    signable = encode_typed_data(domain, types, message)
    signed = Account.sign_message(signable, KEY)
    assert bytes(signed.signature).hex() == EIP712["deal_signature_hex"]


@pytest.mark.parametrize("frame", VECTORS["stream_frames"], ids=lambda f: f["type"])
async def test_stream_frames(frame):
    from lilypad_p2p.net import PROTOCOLS

    data = bytes.fromhex(frame["frame_hex"])
    assert int.from_bytes(data[:4], "big") == len(data) - 4
    protocol = PROTOCOLS[frame["protocol"]]
    allowed = protocol.requests if frame["direction"] == "request" else protocol.responses
    message = decode_body(data[4:], protocol.max_request_bytes, allowed)
    assert frame["type"] == message.TYPE
    assert encode_frame(message) == data
    assert spec.stream_frame(spec.msgpack.unpackb(data[4:], raw=False)) == data

    class _Stream:
        def __init__(self) -> None:
            self.left = data

        async def read(self, n: int) -> bytes:
            chunk, self.left = self.left[:n], self.left[n:]
            return chunk

    assert await read_frame(_Stream(), protocol.max_request_bytes) == data[4:]
