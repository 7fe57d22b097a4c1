"""The bridge reads a request's inputs as a JSON object of module parameters."""

import pytest

from lilypad_p2p.roles._bridge import request_params


def test_json_object_becomes_module_params() -> None:
    given = b'{"text": "hi", "algorithm": "md5"}'
    assert request_params(given) == {"text": "hi", "algorithm": "md5"}


@pytest.mark.parametrize("inputs", [b'["text"]', b'"hi"', b"not json", b"\xff\xfe"])
def test_anything_else_is_refused(inputs: bytes) -> None:
    with pytest.raises(ValueError):
        request_params(inputs)
