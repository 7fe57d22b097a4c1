"""A method that a role adds, asked of a node without that role, says how to get it."""

import json

import pytest

from lilypad_p2p.control import ControlRequest
from lilypad_p2p.control._server import _answer


async def _status(params):
    return {"ok": True}


async def _ask(method: str) -> tuple[bool, object]:
    line = ControlRequest(token="t", method=method, params={}).encode().rstrip(b"\n")
    answer = json.loads(await _answer(line, "t", {"status": _status}))
    return ("result" in answer), answer.get("result", answer.get("error"))


@pytest.mark.parametrize("method", ["submit", "deal", "dispute"])
async def test_a_client_method_on_a_node_without_the_client_role_says_restart_with_client(method):
    assert await _ask(method) == (
        False, "this node was not started with --client: restart it with --client")


async def test_other_unknown_methods_list_the_known_ones():
    assert await _ask("nonsense") == (False, "unknown method 'nonsense'; known: status")
