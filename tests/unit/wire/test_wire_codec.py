import random

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st
from wire_strategies import msgpack_values

from lilypad_p2p.errors import PeerMisbehaved
from lilypad_p2p.wire import (
    MAX_MESSAGE_BYTES,
    MAX_NESTING_DEPTH,
    MalformedMessage,
    NonCanonicalEncoding,
    OversizedMessage,
    UnencodableValue,
    WireError,
    decode,
    encode,
)


def _nested(depth):
    value = []
    for _ in range(depth):
        value = [value]
    return value


canonical_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.text(max_size=20),
    st.binary(max_size=40),
)
canonical_values = st.recursive(
    canonical_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(st.text(max_size=12), children, max_size=6),
    ),
    max_leaves=30,
)


@given(canonical_values)
def test_decode_inverts_encode(value):
    assert decode(encode(value)) == value


@given(canonical_values, st.randoms(use_true_random=False))
def test_encoding_ignores_dict_insertion_order(value, rng):
    def shuffled(obj):
        if isinstance(obj, dict):
            items = list(obj.items())
            rng.shuffle(items)
            return {key: shuffled(item) for key, item in items}
        if isinstance(obj, list):
            return [shuffled(item) for item in obj]
        return obj

    assert encode(shuffled(value)) == encode(value)


@given(canonical_values)
def test_tuples_encode_like_lists(value):
    assert encode((value, [value])) == encode([value, (value,)])


@given(st.binary(max_size=300))
def test_random_bytes_only_raise_wire_errors(data):
    try:
        value = decode(data)
    except WireError:
        return
    assert encode(value) == data  # whatever is accepted is canonical


@given(msgpack_values)
def test_random_msgpack_only_decodes_when_canonical(value):
    data = msgpack.packb(value, use_bin_type=True)
    try:
        decoded = decode(data)
    except WireError:
        return
    assert encode(decoded) == data


def _decode_by_re_encoding(data: bytes) -> object:
    """The decoder's rule stated plainly: decode, re-encode, compare."""
    value = msgpack.unpackb(data, raw=False, strict_map_key=True)
    try:
        canonical = encode(value)
    except UnencodableValue as exc:
        raise MalformedMessage(str(exc)) from exc
    if canonical != data:
        raise NonCanonicalEncoding("msgpack value is not in canonical form")
    return value


def _wrapped(value: object, depth: int) -> object:
    for _ in range(depth):
        value = [value]
    return value


def _verdict(decoder, data: bytes) -> object:
    try:
        return ("value", decoder(data))
    except WireError as error:
        return (type(error), str(error))


@given(
    st.one_of(
        msgpack_values,
        st.builds(  # near the depth limit, with anything at the bottom
            _wrapped, msgpack_values, st.integers(MAX_NESTING_DEPTH - 3, MAX_NESTING_DEPTH + 1)
        ),
    ),
    st.booleans(),
)
def test_decode_gives_the_verdict_of_re_encoding_and_comparing(value, shuffle_maps):
    def shuffled(item):  # unsorted maps at every level, where there are two keys or more
        if isinstance(item, dict):
            return {key: shuffled(item[key]) for key in reversed(list(item))}
        if isinstance(item, list):
            return [shuffled(child) for child in item]
        return item

    data = msgpack.packb(shuffled(value) if shuffle_maps else value, use_bin_type=True)
    assert _verdict(decode, data) == _verdict(_decode_by_re_encoding, data)


@given(st.dictionaries(st.text(max_size=12), canonical_scalars, min_size=2, max_size=6))
def test_unsorted_map_keys_are_rejected(value):
    reversed_order = {key: value[key] for key in sorted(value, reverse=True)}
    data = msgpack.packb(reversed_order, use_bin_type=True)
    assert data != encode(value)
    with pytest.raises(NonCanonicalEncoding):
        decode(data)


@given(st.integers(2**64, 2**256 - 1))
def test_big_integers_travel_as_32_byte_bin(number):
    data = encode(number)
    assert data == msgpack.packb(number.to_bytes(32, "big"), use_bin_type=True)
    assert decode(data) == number.to_bytes(32, "big")


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\xcc\x01", id="uint8 for a fixint"),
        pytest.param(b"\xd0\x01", id="int8 for a fixint"),
        pytest.param(b"\xcd\x00\x10", id="uint16 for a fixint"),
        pytest.param(b"\xd9\x01a", id="str8 for a fixstr"),
        pytest.param(b"\xdc\x00\x01\xc0", id="array16 for a fixarray"),
        pytest.param(b"\xde\x00\x01\xa1a\xc0", id="map16 for a fixmap"),
        pytest.param(b"\x82\xa1b\x01\xa1a\x02", id="unsorted keys"),
        pytest.param(b"\x82\xa1a\x01\xa1a\x02", id="duplicate keys"),
    ],
)
def test_non_canonical_forms_are_rejected(data):
    msgpack.unpackb(data, strict_map_key=False)  # valid msgpack, so only canonicality fails
    with pytest.raises(NonCanonicalEncoding):
        decode(data)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\xc1", id="never-used byte"),
        pytest.param(b"\xcb" + b"\x00" * 8, id="float64"),
        pytest.param(b"\xca" + b"\x00" * 4, id="float32"),
        pytest.param(b"\xd4\x01\x00", id="ext type"),
        pytest.param(b"\xd6\xff\x00\x00\x00\x00", id="msgpack timestamp"),
        pytest.param(b"\x81\xc4\x01k\x01", id="bytes map key"),
        pytest.param(b"\x81\x01\x01", id="int map key"),
        pytest.param(b"\xa2\xff\xfe", id="invalid utf-8"),
        pytest.param(b"\x01\x02", id="trailing bytes"),
        pytest.param(b"\x92\x01", id="truncated"),
        pytest.param(b"\xdd\xff\xff\xff\xff", id="huge declared array"),
        pytest.param(b"\x91" * (MAX_NESTING_DEPTH + 2) + b"\xc0", id="too deep"),
        pytest.param(b"\x91" * 5000 + b"\xc0", id="far too deep"),
    ],
)
def test_malformed_inputs_are_rejected(data):
    with pytest.raises(MalformedMessage):
        decode(data)


def test_oversized_input_is_rejected_before_parsing():
    data = encode(b"x" * MAX_MESSAGE_BYTES)
    with pytest.raises(OversizedMessage):
        decode(data)
    assert decode(data, max_bytes=len(data)) == b"x" * MAX_MESSAGE_BYTES


def test_wire_errors_are_peer_misbehaviour():
    assert issubclass(WireError, PeerMisbehaved)


def test_non_bytes_input_is_malformed():
    with pytest.raises(MalformedMessage):
        decode("not bytes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(1.5, id="float"),
        pytest.param({1: 2}, id="int key"),
        pytest.param(2**256, id="too big"),
        pytest.param(-(2**63) - 1, id="too negative"),
        pytest.param({"a": {1, 2}}, id="set"),
        pytest.param("\ud800", id="lone surrogate"),
        pytest.param(_nested(MAX_NESTING_DEPTH + 1), id="too deep"),
    ],
)
def test_unencodable_values_are_our_error_not_a_peers(value):
    with pytest.raises(UnencodableValue) as caught:
        encode(value)
    assert not isinstance(caught.value, PeerMisbehaved)


def test_maps_sort_by_code_point_which_is_utf8_byte_order():
    keys = ["é", "z", "a", "Z", "ä", "😀", "ab"]
    random.Random(1).shuffle(keys)
    decoded = decode(encode(dict.fromkeys(keys, 0)))
    assert list(decoded) == sorted(keys, key=lambda key: key.encode())
