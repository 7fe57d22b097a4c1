"""Pure framing of control messages: one JSON object per line, bounded size."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from lilypad_p2p.errors import LilypadError

METHOD_NAME = re.compile(r"^[a-z][a-z0-9_.]{0,63}$")


class MalformedControlMessage(LilypadError):
    """A control request or response that does not follow the protocol."""


@dataclass(frozen=True, slots=True)
class ControlRequest:
    token: str
    method: str
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not METHOD_NAME.match(self.method):
            raise MalformedControlMessage(f"bad method name {self.method!r}")

    def encode(self) -> bytes:
        body = {"token": self.token, "method": self.method, "params": self.params}
        return json.dumps(body, separators=(",", ":")).encode() + b"\n"


def decode_request(line: bytes) -> ControlRequest:
    try:
        data = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedControlMessage(f"not JSON: {exc}") from exc
    if not isinstance(data, dict) or set(data) != {"token", "method", "params"}:
        raise MalformedControlMessage("expected an object with token, method and params")
    token, method, params = data["token"], data["method"], data["params"]
    if not isinstance(token, str) or not isinstance(method, str) or not isinstance(params, dict):
        raise MalformedControlMessage("token and method must be strings, params an object")
    return ControlRequest(token=token, method=method, params=params)


def encode_result(result: object) -> bytes:
    return json.dumps({"ok": True, "result": result}, separators=(",", ":")).encode() + b"\n"


def encode_error(message: str) -> bytes:
    return json.dumps({"ok": False, "error": message}, separators=(",", ":")).encode() + b"\n"


def decode_response(line: bytes) -> tuple[bool, Any]:
    """(True, result) or (False, error message)."""
    try:
        data = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedControlMessage(f"node's answer is not JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("ok"), bool):
        raise MalformedControlMessage("node answered without an ok field")
    if data["ok"]:
        return True, data.get("result")
    return False, str(data.get("error", "unknown error"))
