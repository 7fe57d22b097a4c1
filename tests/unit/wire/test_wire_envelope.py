import contextlib
import dataclasses

import msgpack
import pytest
from eth_hash.auto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st
from wire_strategies import ADDRESSES, KEY_BY_ADDRESS, KEYS, messages, msgpack_values

from lilypad_p2p.testing.offers import make_resource_offer
from lilypad_p2p.wire import (
    ENVELOPE_MAX_AGE_MS,
    MAX_CLOCK_SKEW_MS,
    MAX_MESSAGE_BYTES,
    BadSignature,
    Cancel,
    ExpiredMessage,
    FutureDatedMessage,
    InvalidMessage,
    MalformedMessage,
    NonCanonicalEncoding,
    OversizedMessage,
    SignedEnvelope,
    SignerNotOwner,
    StaleMessage,
    UnsupportedVersion,
    WireError,
    encode,
    envelope_digest,
    open_envelope,
    sign_envelope,
)

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
ALICE_KEY, BOB_KEY = KEYS[0], KEYS[1]
ALICE, BOB = ADDRESSES[0], ADDRESSES[1]
CREATED = 1_700_000_000_000
NOW = CREATED + 1_000


def offer(owner=ALICE, **changes):
    return make_resource_offer(**{"provider": owner, "created_at": CREATED,
                                  "expires_at": CREATED + 600_000, "nonce": 7, **changes})


def signed(body=None, key=ALICE_KEY, published_at=NOW):
    return sign_envelope(body or offer(), key, published_at)


def forge(body, key, published_at=NOW, signer=None):
    """Sign without sign_envelope's owner check: what a hostile peer can do."""
    signature = key.sign_msg_hash(envelope_digest(body, published_at)).to_bytes()
    signer = signer or key.public_key.to_checksum_address()
    return SignedEnvelope(signer=signer, published_at=published_at, body=body, signature=signature)


def rewire(envelope, **changes):
    """Re-encode an envelope's wire map with some entries replaced (tampering in transit)."""
    wire = envelope.to_wire()
    wire.update(changes)
    return encode(wire)


@given(messages(), st.data())
def test_sign_then_open_round_trips_every_schema(body, data):
    key = KEY_BY_ADDRESS[body.owner_address]
    published_at = body.created_at + data.draw(st.integers(0, 10_000))
    envelope = sign_envelope(body, key, published_at)
    now = data.draw(st.integers(published_at - MAX_CLOCK_SKEW_MS, published_at + 1_000))
    expires_at = getattr(body, "expires_at", None)
    if expires_at is not None and now >= expires_at:
        with pytest.raises(ExpiredMessage):
            open_envelope(envelope.encode(), now_ms=now)
        return
    opened = open_envelope(envelope.encode(), now_ms=now)
    assert opened == envelope
    assert opened.signer == body.owner_address
    assert opened.envelope_id == envelope.envelope_id
    assert opened.offer_id == body.cid


@given(messages())
def test_envelope_bytes_are_the_canonical_encoding(body):
    envelope = sign_envelope(body, KEY_BY_ADDRESS[body.owner_address], body.created_at)
    assert envelope.encode() == encode(envelope.to_wire())


@given(messages(), st.data())
def test_an_opened_envelope_keeps_the_bytes_it_came_in_and_they_are_canonical(body, data):
    published_at = body.created_at + data.draw(st.integers(0, MAX_CLOCK_SKEW_MS))
    received = sign_envelope(body, KEY_BY_ADDRESS[body.owner_address], published_at).encode()
    opened = open_envelope(received, now_ms=body.created_at)
    assert opened.encode() is received
    assert opened.body.canonical_bytes == encode(opened.body.to_wire())
    assert opened.body.canonical_bytes == encode(msgpack.unpackb(received)["body"])
    # A copy built from the same fields encodes itself and gets the same bytes and IDs.
    rebuilt = dataclasses.replace(opened.body)
    assert rebuilt.canonical_bytes == opened.body.canonical_bytes
    assert rebuilt.cid == opened.body.cid


def other_wire_forms(value):
    """Random values, and other wire forms of `value`: an int as big-endian bytes or a bool,
    bytes as hex text or one byte shorter, a list reordered or with an item repeated."""
    forms = [msgpack_values]
    if type(value) is int and value >= 0:
        forms += [st.sampled_from([value.to_bytes(32, "big"), value.to_bytes(8, "big"),
                                   bool(value)])]
    if type(value) is bytes:
        forms += [st.sampled_from([value.hex(), "0x" + value.hex(), value[:-1]])]
    if type(value) is list and value:
        forms += [st.permutations(value), st.just(value + value[:1])]
    return st.one_of(forms)


@settings(max_examples=300)
@given(messages(), st.booleans(), st.data())
def test_what_from_wire_accepts_to_wire_gives_back_unchanged(body, nested, data):
    # Opening does not re-encode a received body, which is right only if every wire value
    # `from_wire` accepts comes back from `to_wire` unchanged.
    wire = body.to_wire()
    target = wire["spec"] if nested and isinstance(wire.get("spec"), dict) else wire
    name = data.draw(st.sampled_from(sorted(target)))
    target[name] = data.draw(other_wire_forms(target[name]))
    try:
        raw = msgpack.unpackb(encode(wire))
        rebuilt = type(body).from_wire(raw)
    except (WireError, InvalidMessage, ValueError, TypeError):
        return
    assert encode(rebuilt.to_wire()) == msgpack.packb(raw)


def test_opening_encodes_nothing_the_peer_sent(monkeypatch):
    sent = signed()
    received, offer_id, envelope_id = sent.encode(), sent.offer_id, sent.envelope_id

    def no_encoding(value):
        raise AssertionError("a received message was encoded again")

    monkeypatch.setattr("lilypad_p2p.wire._schemas.encode", no_encoding)
    opened = open_envelope(received, now_ms=NOW)
    assert (opened.offer_id, opened.envelope_id) == (offer_id, envelope_id)


def test_bytes_that_are_not_the_envelopes_encoding_are_refused():
    envelope = SignedEnvelope.from_wire(msgpack.unpackb(signed().encode()))
    with pytest.raises(NonCanonicalEncoding):
        envelope._received_as(signed(published_at=NOW + 1).encode())


def test_digest_is_eip191_shaped_and_domain_separated():
    body = offer()
    content = encode({"body": body.to_wire(), "published_at": NOW})
    expected = keccak(b"\x19\x4c" + b"lilypad-p2p/envelope/1/resource_offer\x00" + content)
    assert envelope_digest(body, NOW) == expected
    # The bytes signed never start like a transaction (RLP list >= 0xc0, typed tx 0x01-0x04).
    assert envelope_digest(body, NOW) != keccak(content)


def test_signatures_are_low_s_and_65_bytes():
    for published_at in range(NOW, NOW + 50):
        signature = signed(published_at=published_at).signature
        assert len(signature) == 65
        assert int.from_bytes(signature[32:64], "big") <= SECP256K1_N // 2
        assert signature[64] in (0, 1)


def test_republishing_keeps_the_offer_id_but_not_the_envelope_id():
    first, second = signed(published_at=NOW), signed(published_at=NOW + 30_000)
    assert first.offer_id == second.offer_id
    assert first.envelope_id != second.envelope_id


def test_tampered_body_is_a_bad_signature():
    envelope = signed()
    tampered = rewire(envelope, body=offer(price_per_job_wei=1).to_wire())
    with pytest.raises(BadSignature):
        open_envelope(tampered, now_ms=NOW)


def test_tampered_published_at_is_a_bad_signature():
    with pytest.raises(BadSignature):
        open_envelope(rewire(signed(), published_at=NOW + 1), now_ms=NOW)


@pytest.mark.parametrize("position", [0, 31, 32, 63])
def test_tampered_signature_is_a_bad_signature(position):
    signature = bytearray(signed().signature)
    signature[position] ^= 0x01
    with pytest.raises(BadSignature):
        open_envelope(rewire(signed(), signature=bytes(signature)), now_ms=NOW)


def test_flipped_recovery_id_is_a_bad_signature():
    signature = bytearray(signed().signature)
    signature[64] ^= 0x01
    with pytest.raises(BadSignature):
        open_envelope(rewire(signed(), signature=bytes(signature)), now_ms=NOW)


def test_claimed_signer_that_did_not_sign_is_a_bad_signature():
    """Bob signs Alice's offer but claims to be Alice."""
    forged = forge(offer(owner=ALICE), BOB_KEY, signer=ALICE)
    with pytest.raises(BadSignature):
        open_envelope(forged.encode(), now_ms=NOW)


def test_tampered_signer_field_is_a_bad_signature():
    with pytest.raises(BadSignature):
        open_envelope(rewire(signed(), signer=bytes.fromhex(BOB[2:])), now_ms=NOW)


def test_signed_by_someone_other_than_the_owner():
    """Bob honestly signs as Bob, but the offer says Alice provides it."""
    forged = forge(offer(owner=ALICE), BOB_KEY)
    with pytest.raises(SignerNotOwner):
        open_envelope(forged.encode(), now_ms=NOW)


def test_sign_envelope_refuses_to_sign_someone_elses_body():
    with pytest.raises(InvalidMessage, match="refusing"):
        sign_envelope(offer(owner=ALICE), BOB_KEY, NOW)


def test_cancel_must_be_signed_by_its_owner():
    cancel = Cancel(market="cpu", offer_cid=offer().cid, owner=ALICE, created_at=NOW, nonce=1)
    assert open_envelope(signed(cancel).encode(), now_ms=NOW).body == cancel
    with pytest.raises(SignerNotOwner):
        open_envelope(forge(cancel, BOB_KEY).encode(), now_ms=NOW)


def test_high_s_twin_of_a_valid_signature_is_rejected():
    envelope = signed()
    r, s, v = envelope.signature[:32], envelope.signature[32:64], envelope.signature[64]
    high_s = (SECP256K1_N - int.from_bytes(s, "big")).to_bytes(32, "big")
    twin = r + high_s + bytes([v ^ 1])  # recovers the same key in plain ECDSA
    with pytest.raises(BadSignature, match="low-s"):
        open_envelope(rewire(envelope, signature=twin), now_ms=NOW)


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param(b"\x00" * 65, id="zero"),
        pytest.param(b"\xff" * 64 + b"\x00", id="r and s above n"),
        pytest.param(b"\x01" * 64 + b"\x1b", id="v=27 form"),
    ],
)
def test_out_of_range_signatures_are_rejected(signature):
    with pytest.raises(BadSignature):
        open_envelope(rewire(signed(), signature=signature), now_ms=NOW)


def test_short_signature_is_malformed():
    with pytest.raises(MalformedMessage):
        open_envelope(rewire(signed(), signature=b"\x01" * 64), now_ms=NOW)


def test_expired_offer_is_rejected_at_its_expiry():
    body = offer(expires_at=NOW + 10)
    data = signed(body).encode()
    assert open_envelope(data, now_ms=NOW + 9).body == body
    with pytest.raises(ExpiredMessage):
        open_envelope(data, now_ms=NOW + 10)


def test_future_dated_envelope_is_rejected_beyond_the_skew():
    data = signed(published_at=NOW + MAX_CLOCK_SKEW_MS).encode()
    assert open_envelope(data, now_ms=NOW).published_at == NOW + MAX_CLOCK_SKEW_MS
    data = signed(published_at=NOW + MAX_CLOCK_SKEW_MS + 1).encode()
    with pytest.raises(FutureDatedMessage):
        open_envelope(data, now_ms=NOW)


def test_future_created_body_is_rejected_beyond_the_skew():
    body = offer(created_at=NOW + MAX_CLOCK_SKEW_MS + 1, expires_at=NOW + 10**6)
    with pytest.raises(FutureDatedMessage):
        open_envelope(signed(body, published_at=body.created_at).encode(), now_ms=NOW)


def test_envelope_published_before_its_body_was_created_is_malformed():
    with pytest.raises(InvalidMessage):
        forge(offer(), ALICE_KEY, published_at=CREATED - 1)


def test_stale_envelope_is_rejected_after_the_replay_window():
    body = offer(expires_at=NOW + 2 * ENVELOPE_MAX_AGE_MS)
    data = signed(body, published_at=NOW).encode()
    assert open_envelope(data, now_ms=NOW + ENVELOPE_MAX_AGE_MS).published_at == NOW
    with pytest.raises(StaleMessage):
        open_envelope(data, now_ms=NOW + ENVELOPE_MAX_AGE_MS + 1)


def test_oversized_envelope_is_rejected_before_parsing():
    with pytest.raises(OversizedMessage):
        open_envelope(b"\xc1" * (MAX_MESSAGE_BYTES + 1), now_ms=NOW)


def test_unknown_envelope_version_and_fields():
    with pytest.raises(UnsupportedVersion):
        open_envelope(rewire(signed(), v=2), now_ms=NOW)
    with pytest.raises(MalformedMessage, match="unknown fields"):
        open_envelope(rewire(signed(), extra=1), now_ms=NOW)


def test_non_canonical_envelope_is_rejected():
    envelope = signed()
    reordered = dict(reversed(list(envelope.to_wire().items())))
    with pytest.raises(NonCanonicalEncoding):
        open_envelope(msgpack.packb(reordered, use_bin_type=True), now_ms=NOW)


@given(st.binary(max_size=600))
def test_random_bytes_only_raise_wire_errors(data):
    with pytest.raises(WireError):
        open_envelope(data, now_ms=NOW)


@given(msgpack_values)
def test_random_structures_only_raise_wire_errors(value):
    with pytest.raises(WireError):
        open_envelope(msgpack.packb(value, use_bin_type=True), now_ms=NOW)


@given(st.data())
def test_corrupted_envelopes_only_raise_wire_errors(data):
    encoded = bytearray(signed().encode())
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(encoded) - 1))
        encoded[position] = data.draw(st.integers(0, 255))
    try:
        opened = open_envelope(bytes(encoded), now_ms=NOW)
    except WireError:
        return
    assert opened.encode() == bytes(encoded)


@given(st.data())
def test_envelopes_with_random_field_values_only_raise_wire_errors(data):
    wire = signed().to_wire()
    name = data.draw(st.sampled_from(sorted(wire)))
    wire[name] = data.draw(msgpack_values)
    with contextlib.suppress(WireError):
        open_envelope(msgpack.packb(wire, use_bin_type=True), now_ms=NOW)


def test_constructing_envelopes_checks_shapes():
    envelope = signed()
    with pytest.raises(InvalidMessage):
        dataclasses.replace(envelope, signature=b"short")
    with pytest.raises(InvalidMessage):
        dataclasses.replace(envelope, signer=ALICE.lower())
    with pytest.raises(InvalidMessage):
        dataclasses.replace(envelope, body="not a message")
