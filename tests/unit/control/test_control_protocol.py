import json

import pytest

from lilypad_p2p.control import ControlRequest, MalformedControlMessage, decode_request
from lilypad_p2p.control._protocol import decode_response, encode_error, encode_result


def test_request_round_trip():
    request = ControlRequest(token="t", method="offers", params={"market": "cpu"})
    assert decode_request(request.encode().rstrip(b"\n")) == request


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"\xff\xfe",
        b"[]",
        b'{"token": "t", "method": "x"}',
        b'{"token": 1, "method": "x", "params": {}}',
        b'{"token": "t", "method": "x", "params": []}',
        b'{"token": "t", "method": "X Y", "params": {}}',
        b'{"token": "t", "method": "x", "params": {}, "extra": 1}',
    ],
)
def test_malformed_requests_raise_typed_error(line):
    with pytest.raises(MalformedControlMessage):
        decode_request(line)


def test_responses():
    assert decode_response(encode_result({"a": [1]}).rstrip()) == (True, {"a": [1]})
    assert decode_response(encode_error("boom").rstrip()) == (False, "boom")
    with pytest.raises(MalformedControlMessage):
        decode_response(json.dumps({"result": 1}).encode())
