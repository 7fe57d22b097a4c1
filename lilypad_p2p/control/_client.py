"""A blocking client for the control interface, used by the CLI."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

from lilypad_p2p.config import CONTROL_MAX_LINE, CONTROL_TIMEOUT_S
from lilypad_p2p.control._address import socket_address
from lilypad_p2p.control._protocol import ControlRequest, decode_response
from lilypad_p2p.errors import LilypadError

# While the node's accept backlog is full, try to connect again after this long.
CONNECT_RETRY_S = 0.05


class ControlError(LilypadError):
    """The node refused or failed a control request; the message is the node's."""


class NodeNotRunning(ControlError):
    """No node answers on the control socket."""


def call(
    home: Path,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    timeout_s: float = CONTROL_TIMEOUT_S,
) -> Any:
    """Send one request to the node whose home is `home` and return its result."""
    socket_path, token_file = home / "control.sock", home / "control.token"
    hint = f"no node is running with home {home}; start one with `lilypad-p2p node --home {home}`"
    try:
        token = token_file.read_text().strip()
    except FileNotFoundError as exc:
        raise NodeNotRunning(hint) from exc
    except PermissionError as exc:
        raise ControlError(f"cannot read {token_file}: run as the node's user") from exc
    except NotADirectoryError as exc:
        raise ControlError(f"--home {home} is not a directory: pass the node's directory") from exc
    request = ControlRequest(token=token, method=method, params=params or {})
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        _connect(sock, socket_path, timeout_s, hint)
        buffer = bytearray()
        try:
            sock.sendall(request.encode())
            while b"\n" not in buffer:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buffer += chunk
                if len(buffer) > CONTROL_MAX_LINE:
                    raise ControlError(f"node's answer is longer than {CONTROL_MAX_LINE} bytes")
        except TimeoutError as exc:
            raise ControlError(f"node did not answer {method!r} within {timeout_s} s") from exc
        except OSError as exc:  # reset or broken pipe: the node refused or dropped the request
            raise ControlError(f"node closed the connection during {method!r}: "
                               f"{exc.strerror or exc}") from exc
    if not buffer:
        raise ControlError(f"node closed the connection without answering {method!r}")
    ok, value = decode_response(bytes(buffer.split(b"\n", 1)[0]))
    if not ok:
        raise ControlError(value)
    return value


def _connect(sock: socket.socket, path: Path, timeout_s: float, hint: str) -> None:
    """Connect, waiting while the node's accept backlog is full: a Unix socket with a timeout
    answers EAGAIN at once instead of waiting like a TCP connect."""
    give_up = time.monotonic() + timeout_s
    while True:
        try:
            with socket_address(path) as address:
                sock.connect(address)
            return
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise NodeNotRunning(hint) from exc
        except BlockingIOError as exc:
            if time.monotonic() > give_up:
                raise ControlError(f"the node at {path} accepted no connection within "
                                   f"{timeout_s} s; it is overloaded, try again") from exc
            time.sleep(CONNECT_RETRY_S)
        except OSError as exc:
            raise ControlError(f"cannot reach the node at {path}: {exc.strerror or exc}") from exc
