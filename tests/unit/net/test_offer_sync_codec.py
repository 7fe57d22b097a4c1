import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lilypad_p2p import wire
from lilypad_p2p.net._params import ANTI_ENTROPY_INTERVAL_S, ANTI_ENTROPY_MAX_INTERVAL_S
from lilypad_p2p.net._sync import (
    DIGEST_BYTES,
    MAX_SYNC_ENVELOPES,
    MAX_SYNC_RESPONSE_BYTES,
    SyncResponseInvalid,
    decode_request,
    decode_response,
    digest,
    encode_request,
    encode_response,
    next_pull_pause_s,
)


def test_request_round_trip():
    known = {digest(b"one"), digest(b"two")}
    assert decode_request(encode_request(["cpu", "gpu"], known)) == (["cpu", "gpu"], known)
    assert decode_request(encode_request(["cpu"])) == (["cpu"], frozenset())


def test_a_full_book_of_digests_fits_a_request():
    known = {digest(i.to_bytes(4, "big")) for i in range(MAX_SYNC_ENVELOPES)}
    assert decode_request(encode_request(["cpu"], known))[1] == known


@pytest.mark.parametrize(
    "request_body",
    [{"markets": ["CPU!"], "known": []}, {"markets": "cpu", "known": []},
     {"markets": [], "known": [], "x": 1}, [], {"markets": [1], "known": []},
     {"markets": ["cpu"]}, {"markets": ["cpu"], "known": [b"short"]},
     {"markets": ["cpu"], "known": b"x" * DIGEST_BYTES},
     {"markets": ["cpu"], "known": [b"x" * DIGEST_BYTES] * (MAX_SYNC_ENVELOPES + 1)}],
)
def test_bad_requests_are_wire_errors(request_body):
    with pytest.raises(wire.WireError):
        decode_request(wire.encode(request_body))


def test_response_round_trip_and_bounds():
    envelopes = [bytes([i]) * 100 for i in range(10)]
    assert decode_response(encode_response(envelopes)) == envelopes
    many = [b"x"] * (MAX_SYNC_ENVELOPES + 5)
    assert len(decode_response(encode_response(many))) == MAX_SYNC_ENVELOPES
    big = [b"y" * 60_000] * 200
    encoded = encode_response(big)
    assert len(encoded) <= MAX_SYNC_RESPONSE_BYTES
    assert 0 < len(decode_response(encoded)) < 200


@pytest.mark.parametrize(
    "response_body",
    [{"envelopes": "x"}, {"envelopes": [1]}, {"other": []}, [b"x"]],
)
def test_bad_responses_raise_typed_error(response_body):
    with pytest.raises(SyncResponseInvalid):
        decode_response(wire.encode(response_body))


@given(st.binary(max_size=512))
def test_garbage_responses_only_raise_wire_errors(data):
    with contextlib.suppress(wire.WireError):
        decode_response(data)


def test_pull_pause_doubles_while_pulls_find_nothing_and_resets_otherwise():
    pause = ANTI_ENTROPY_INTERVAL_S
    pauses = []
    for _ in range(4):
        pause = next_pull_pause_s(pause, learnt=0)
        pauses.append(pause)
    assert pauses == [20.0, 40.0, 40.0, 40.0] == [
        min(ANTI_ENTROPY_INTERVAL_S * 2**n, ANTI_ENTROPY_MAX_INTERVAL_S) for n in range(1, 5)]
    assert next_pull_pause_s(pause, learnt=3) == ANTI_ENTROPY_INTERVAL_S
    assert next_pull_pause_s(pause, learnt=None) == ANTI_ENTROPY_INTERVAL_S
