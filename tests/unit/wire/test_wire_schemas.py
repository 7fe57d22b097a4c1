import base64
import binascii
import contextlib
import dataclasses
import hashlib

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st
from multiformats import CID, multihash
from wire_strategies import (
    ADDRESSES,
    PEER_IDS,
    SCHEMA_STRATEGIES,
    messages,
    msgpack_values,
    resource_offers,
)

from lilypad_p2p.testing.offers import make_resource_offer
from lilypad_p2p.wire import (
    MAX_CHAIN_ID,
    MAX_CHAINS,
    MESSAGE_TYPES,
    Cancel,
    InvalidMessage,
    JobOffer,
    MalformedMessage,
    MatchProposal,
    NodeRecord,
    ResourceSpec,
    UnsupportedVersion,
    WireError,
    address_from_peer_id_text,
    content_id,
    decode,
    encode,
    is_content_id,
    message_from_wire,
)

ALICE, BOB = ADDRESSES[0], ADDRESSES[1]
SPEC = ResourceSpec(milli_cpu=1000, ram_mb=512, disk_mb=100)


# What these schema tests pin down, over the shared factory's defaults.
OFFER_FIELDS = {
    "provider": ALICE,
    "collateral_wei": 2 * 10**15,
    "chain_ids": (1, 31337),
    "created_at": 1_000,
    "expires_at": 61_000,
    "nonce": 7,
}


def offer(**changes):
    return make_resource_offer(**{**OFFER_FIELDS, **changes})


@pytest.mark.parametrize("schema", list(SCHEMA_STRATEGIES))
@given(data=st.data())
def test_round_trip_through_wire_and_bytes(schema, data):
    message = data.draw(SCHEMA_STRATEGIES[schema]())
    assert schema.from_wire(message.to_wire()) == message
    assert message_from_wire(decode(encode(message.to_wire()))) == message
    assert decode(message.canonical_bytes) == message.to_wire()


@given(messages())
def test_equal_messages_encode_identically(message):
    rebuilt = dataclasses.replace(message)
    assert rebuilt.canonical_bytes == message.canonical_bytes == encode(message.to_wire())
    assert rebuilt.cid == message.cid


@given(messages())
def test_cid_matches_multiformats(message):
    digest = hashlib.sha256(message.canonical_bytes).digest()
    expected = CID("base32", 1, "raw", multihash.wrap(digest, "sha2-256"))
    assert message.cid == str(expected)
    assert is_content_id(message.cid)


@given(st.binary(max_size=80))
def test_content_id_rejects_near_misses(data):
    cid = content_id(data)
    assert is_content_id(cid)
    assert not is_content_id(cid.upper())
    assert not is_content_id(cid[:-1])
    assert not is_content_id("z" + cid[1:])


@given(msgpack_values)
def test_random_structures_only_raise_wire_errors(value):
    for build in (message_from_wire, *(cls.from_wire for cls in MESSAGE_TYPES.values())):
        with contextlib.suppress(WireError):
            build(value)


@given(messages(), st.data())
def test_mutated_fields_only_raise_wire_errors(message, data):
    wire = message.to_wire()
    name = data.draw(st.sampled_from(sorted(wire)))
    mutation = data.draw(st.sampled_from(["replace", "delete", "add"]))
    if mutation == "replace":
        wire[name] = data.draw(msgpack_values)
    elif mutation == "delete":
        del wire[name]
    else:
        wire[data.draw(st.text(max_size=8).filter(lambda key: key not in wire))] = 0
    try:
        rebuilt = message_from_wire(wire)
    except WireError:
        original = message.to_wire()[name]
        # Compared as encoded: [True] == [1] in Python, but not on the wire.
        assert mutation != "replace" or msgpack.packb(wire[name]) != msgpack.packb(original)
        return
    assert mutation == "replace"
    assert rebuilt.to_wire() == wire


@given(messages())
def test_unknown_field_is_malformed(message):
    wire = message.to_wire()
    wire["zzz_extra"] = 1
    with pytest.raises(MalformedMessage, match="unknown fields"):
        message_from_wire(wire)


@given(messages())
def test_missing_field_is_malformed(message):
    wire = message.to_wire()
    del wire["nonce"]
    with pytest.raises(MalformedMessage, match="missing fields"):
        message_from_wire(wire)


def test_other_version_is_unsupported():
    wire = offer().to_wire()
    wire["v"] = 2
    with pytest.raises(UnsupportedVersion):
        message_from_wire(wire)


def test_type_must_match_schema():
    wire = offer().to_wire()
    with pytest.raises(MalformedMessage):
        JobOffer.from_wire(wire)
    wire["type"] = "job_offer"
    with pytest.raises(MalformedMessage):
        message_from_wire(wire)
    wire["type"] = "mystery"
    with pytest.raises(MalformedMessage, match="unknown message type"):
        message_from_wire(wire)


def test_small_amount_in_32_byte_form_is_non_canonical():
    wire = offer().to_wire()
    wire["price_per_job_wei"] = (5).to_bytes(32, "big")
    with pytest.raises(MalformedMessage, match="2\\*\\*64"):
        message_from_wire(wire)


def test_large_amounts_round_trip():
    big = offer(collateral_wei=2**200)
    assert big.to_wire()["collateral_wei"] == (2**200).to_bytes(32, "big")
    assert message_from_wire(decode(big.canonical_bytes)) == big


def test_bools_are_not_ints():
    wire = offer().to_wire()
    wire["nonce"] = True
    with pytest.raises(MalformedMessage):
        message_from_wire(wire)


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"market": "CPU"}, id="upper-case market"),
        pytest.param({"market": ""}, id="empty market"),
        pytest.param({"provider": ALICE.lower()}, id="address not checksummed"),
        pytest.param({"modules": ("b", "a")}, id="unsorted set"),
        pytest.param({"modules": ("a", "a")}, id="duplicates"),
        pytest.param({"modules": ["a"]}, id="list instead of tuple"),
        pytest.param(
            {"trusted_mediators": tuple(sorted(ADDRESSES, key=str.lower, reverse=True))},
            id="unsorted mediators",
        ),
        pytest.param({"price_per_job_wei": -1}, id="negative price"),
        pytest.param({"price_per_job_wei": 2**256}, id="price above uint256"),
        pytest.param({"expires_at": 1_000}, id="expires at creation"),
        pytest.param({"expires_at": 1_000 + 24 * 3600 * 1000 + 1}, id="lives too long"),
        pytest.param({"nonce": 2**64}, id="nonce too big"),
        pytest.param({"spec": {"milli_cpu": 1}}, id="spec not a ResourceSpec"),
        pytest.param({"v": 2}, id="unknown version"),
        pytest.param({"chain_ids": ()}, id="no chain"),
        pytest.param({"chain_ids": (31337, 1)}, id="unsorted chains"),
        pytest.param({"chain_ids": (1, 1)}, id="duplicate chains"),
        pytest.param({"chain_ids": (0,)}, id="chain id 0"),
        pytest.param({"chain_ids": (MAX_CHAIN_ID + 1,)}, id="chain id too big"),
        pytest.param({"chain_ids": (True,)}, id="bool for chain id"),
        pytest.param({"chain_ids": tuple(range(1, MAX_CHAINS + 2))}, id="too many chains"),
    ],
)
def test_invalid_offers_cannot_be_built(changes):
    with pytest.raises(InvalidMessage):
        offer(**changes)


def test_invalid_message_is_our_error_and_malformed_is_theirs():
    wire = offer().to_wire()
    wire["market"] = "CPU"
    with pytest.raises(MalformedMessage) as caught:
        message_from_wire(wire)
    assert isinstance(caught.value.__cause__, InvalidMessage)


def test_type_field_is_fixed():
    with pytest.raises(TypeError):
        make_resource_offer(type="job_offer", **OFFER_FIELDS)


def test_gpu_vram_requires_gpus():
    with pytest.raises(InvalidMessage):
        ResourceSpec(milli_cpu=1, ram_mb=1, disk_mb=1, gpu_count=0, gpu_vram_mb=1)
    assert ResourceSpec(milli_cpu=1, ram_mb=1, disk_mb=1, gpu_count=2, gpu_vram_mb=8).gpu_count == 2


def _record(**changes):
    fields = {
        "address": ALICE,
        "peer_id": PEER_IDS[ALICE],
        "roles": ("provider", "solver"),
        "sealing_public_key": b"k" * 32,
        "markets": ("cpu", "gpu"),
        "listen_addrs": ("/ip4/127.0.0.1/tcp/4001",),
        "created_at": 0,
        "expires_at": 60_000,
        "nonce": 1,
    }
    return NodeRecord(**{**fields, **changes})


def test_node_record_peer_id_must_hold_the_address_key():
    assert _record().peer_id.startswith("16Uiu2")
    assert address_from_peer_id_text(_record().peer_id) == ALICE
    with pytest.raises(InvalidMessage, match="different keys"):
        _record(peer_id=PEER_IDS[BOB])
    with pytest.raises(InvalidMessage):
        _record(peer_id="QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N")


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"roles": ("solver", "provider")}, id="unsorted roles"),
        pytest.param({"roles": ("king",)}, id="unknown role"),
        pytest.param({"sealing_public_key": b"k" * 31}, id="short sealing key"),
        pytest.param({"listen_addrs": ("tcp/4001",)}, id="not a multiaddr"),
        pytest.param({"listen_addrs": ("/a", "/a")}, id="duplicate addrs"),
        pytest.param({"mediator_available": 1}, id="int for bool"),
    ],
)
def test_invalid_node_records_cannot_be_built(changes):
    with pytest.raises(InvalidMessage):
        _record(**changes)


def test_listen_addrs_keep_their_order():
    record = _record(listen_addrs=("/ip4/10.0.0.1/tcp/1", "/ip4/1.0.0.1/tcp/1"))
    assert message_from_wire(record.to_wire()).listen_addrs == record.listen_addrs


def test_job_offer_rules():
    fields = {
        "market": "cpu",
        "job_creator": BOB,
        "module": "cowsay:v1",
        "spec": SPEC,
        "max_price_wei": 10**16,
        "trusted_mediators": (),
        "chain_id": 31337,
        "deadline": 100_000,
        "inputs_commitment": bytes(32),
        "created_at": 0,
        "expires_at": 60_000,
        "nonce": 1,
    }
    assert JobOffer(**fields).target_provider is None
    assert JobOffer(**fields, target_provider=ALICE).owner_address == BOB
    with pytest.raises(InvalidMessage, match="deadline"):
        JobOffer(**{**fields, "deadline": 59_999})
    for bad_chain in (0, -1, MAX_CHAIN_ID + 1, "1", (1,)):
        with pytest.raises(InvalidMessage, match="chain_id"):
            JobOffer(**{**fields, "chain_id": bad_chain})
    # The chain is part of the signed body: another chain is another offer.
    assert JobOffer(**fields).cid != JobOffer(**{**fields, "chain_id": 1}).cid
    # So is the commitment to the inputs: other inputs are another offer, hence another deal.
    assert JobOffer(**fields).cid != JobOffer(**{**fields, "inputs_commitment": b"\1" * 32}).cid
    for bad_commitment in (b"", bytes(31), bytes(33), "00" * 32, None):
        with pytest.raises(InvalidMessage, match="inputs_commitment"):
            JobOffer(**{**fields, "inputs_commitment": bad_commitment})


def test_match_proposal_rules():
    job, other_job, resource = content_id(b"j"), content_id(b"k"), content_id(b"r")
    fields = {
        "market": "cpu",
        "epoch": 3,
        "solver": ALICE,
        "created_at": 0,
        "expires_at": 5_000,
        "nonce": 1,
    }
    pairs = tuple(sorted([(job, resource), (other_job, resource)]))
    assert MatchProposal(**fields, matches=pairs).matches == pairs
    with pytest.raises(InvalidMessage, match="empty"):
        MatchProposal(**fields, matches=())
    with pytest.raises(InvalidMessage, match="more than one"):
        MatchProposal(**fields, matches=tuple(sorted([(job, resource), (job, other_job)])))
    with pytest.raises(InvalidMessage):
        MatchProposal(**fields, matches=((job, "not-a-cid"),))
    with pytest.raises(InvalidMessage, match="sorted"):
        MatchProposal(**fields, matches=tuple(reversed(pairs)))


def test_cancel_names_a_cid_and_its_owner():
    cancel = Cancel(market="cpu", offer_cid=offer().cid, owner=ALICE, created_at=5, nonce=2)
    assert cancel.owner_address == ALICE
    assert message_from_wire(decode(cancel.canonical_bytes)) == cancel
    with pytest.raises(InvalidMessage):
        Cancel(market="cpu", offer_cid="bafy-nope", owner=ALICE, created_at=5, nonce=2)


@given(resource_offers())
def test_owner_address_is_the_owner_field(message):
    assert message.owner_address == message.provider


def test_wire_form_is_compact():
    """Addresses travel as 20 bytes, the whole offer stays small (gossip is scarce)."""
    wire = offer(trusted_mediators=tuple(sorted(ADDRESSES, key=str.lower))).to_wire()
    assert wire["provider"] == bytes.fromhex(ALICE[2:])
    assert len(msgpack.packb(wire)) < 400


def _decodes_to_a_cid(text):
    body = text[1:].upper()
    try:
        raw = base64.b32decode(body + "=" * (-len(body) % 8))
    except binascii.Error:
        return False
    prefix = bytes([1, 0x55, 0x12, 0x20])  # CIDv1, raw, sha2-256, 32 bytes
    return raw[:4] == prefix and len(raw) == 36 and content_id_render(raw) == text


def content_id_render(raw):
    return "b" + base64.b32encode(raw).decode().lower().rstrip("=")


@given(st.binary(min_size=32, max_size=32), st.integers(0, 57), st.sampled_from("abcxyz234567A"))
def test_content_id_check_equals_decoding(digest, position, char):
    cid = content_id_render(bytes([1, 0x55, 0x12, 0x20]) + digest)
    assert is_content_id(cid) and _decodes_to_a_cid(cid)
    mutated = cid[: position + 1] + char + cid[position + 2 :]
    assert is_content_id(mutated) == _decodes_to_a_cid(mutated)
