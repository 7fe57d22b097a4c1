"""Serve the control interface under the node's nursery."""

from __future__ import annotations

import contextlib
import errno
import hmac
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import trio

from lilypad_p2p.config import CONTROL_MAX_LINE, CONTROL_TIMEOUT_S
from lilypad_p2p.control._address import socket_address
from lilypad_p2p.control._protocol import (
    MalformedControlMessage,
    decode_request,
    encode_error,
    encode_result,
)
from lilypad_p2p.errors import LilypadError

Handler = Callable[[dict[str, Any]], Awaitable[object]]
log = logging.getLogger("lilypad_p2p.control")

# Connections served at once. Past this, a new one evicts the oldest that is still sending its
# request (or waits in the backlog while all are being answered), so local clients that never
# finish cannot exhaust the node's file descriptors or lock the others out.
MAX_CONNECTIONS = 64
# After the process runs out of file descriptors, wait this long before accepting again.
ACCEPT_BACKOFF_S = 0.1
# The methods a role adds, by the `node` flag that starts it: a node without the role says
# how to get it, where "unknown method" would read as a bug.
ROLE_METHODS = {"submit": "--client", "deal": "--client", "dispute": "--client"}


def _write_private(path: Path, text: str) -> None:
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def _claim_socket_path(path: Path) -> None:
    """Remove a stale socket left by a crashed node; refuse if a live node still answers."""
    if not path.exists():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with socket_address(path) as address:
            probe.connect(address)
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise
        path.unlink(missing_ok=True)
    else:
        raise LilypadError(
            f"another node is already running with home {path.parent} (its control socket "
            "answers); stop it first or pass another --home"
        )
    finally:
        probe.close()


async def _read_line(stream: trio.SocketStream) -> bytes:
    buffer = bytearray()
    while b"\n" not in buffer:
        chunk = await stream.receive_some(65536)
        if not chunk:
            break
        buffer += chunk
        if len(buffer) > CONTROL_MAX_LINE:
            raise MalformedControlMessage(f"request longer than {CONTROL_MAX_LINE} bytes")
    return bytes(buffer.split(b"\n", 1)[0])


async def _answer(line: bytes, token: str, handlers: Mapping[str, Handler]) -> bytes:
    try:
        request = decode_request(line)
    except MalformedControlMessage as exc:
        return encode_error(str(exc))
    if not hmac.compare_digest(request.token, token):
        return encode_error("bad control token")
    handler = handlers.get(request.method)
    if handler is None:
        if (flag := ROLE_METHODS.get(request.method)) is not None:
            return encode_error(f"this node was not started with {flag}: restart it with {flag}")
        known = ", ".join(sorted(handlers))
        return encode_error(f"unknown method {request.method!r}; known: {known}")
    try:
        return encode_result(await handler(request.params))
    except LilypadError as exc:
        return encode_error(str(exc))
    except Exception:
        log.exception("control handler %s failed", request.method)
        return encode_error(f"internal error in {request.method}; see the node's log")


class _Connections:
    """The open connections, so that a new one can evict the oldest that is still sending its
    request: clients that never finish cannot lock out the others or exhaust descriptors.
    Admission is counted in the accept loop itself, before the connection's task runs, so a
    burst of connections cannot overshoot the cap."""

    def __init__(self) -> None:
        self.open = 0
        self._next_id = 0
        self._reading: dict[int, trio.CancelScope] = {}  # insertion order: oldest first
        self._evicted: set[int] = set()
        self._freed = trio.Event()

    async def admit(self) -> int:
        """An ID for a new connection; while every open one is being answered (briefly: each
        ends within CONTROL_TIMEOUT_S), the new one waits in the accept loop."""
        while (ident := self._try_admit()) is None:
            await self._freed.wait()
            self._freed = trio.Event()
        return ident

    def _try_admit(self) -> int | None:
        if self.open >= MAX_CONNECTIONS:
            if not self._reading:
                return None
            oldest = next(iter(self._reading))
            self._reading.pop(oldest).cancel()
            self._evicted.add(oldest)
            self.open -= 1
        self._next_id += 1
        self._reading[self._next_id] = trio.CancelScope()
        self.open += 1
        return self._next_id

    async def serve(self, ident: int, stream: trio.SocketStream, token: str,
                    handlers: Mapping[str, Handler]) -> None:
        """Answer one request. Whatever the client does (closes early, half-closes, resets,
        sends garbage or too much, never finishes) ends this connection only, never the node."""
        try:
            async with stream:
                with trio.move_on_after(CONTROL_TIMEOUT_S):
                    line = await self._read(ident, stream)
                    if line is None:
                        return
                    answer = await _answer(line, token, handlers)
                    await stream.send_all(answer)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            log.debug("control client went away: %r", exc)
        finally:
            self._reading.pop(ident, None)
            if ident in self._evicted:
                self._evicted.discard(ident)
            else:
                self.open -= 1
                self._freed.set()

    async def _read(self, ident: int, stream: trio.SocketStream) -> bytes | None:
        """The request line; None when it was answered with an error or the read evicted."""
        scope = self._reading.get(ident)
        if scope is None:  # evicted before it started
            return None
        with scope:
            try:
                return await _read_line(stream)
            except MalformedControlMessage as exc:
                await stream.send_all(encode_error(str(exc)))
                return None
            finally:
                self._reading.pop(ident, None)
        return None


async def serve_control(
    socket_path: Path,
    token_file: Path,
    handlers: Mapping[str, Handler],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on `socket_path` until cancelled; removes the socket and token file on exit."""
    socket_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    _claim_socket_path(socket_path)
    token = secrets.token_hex(32)
    _write_private(token_file, token)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        with socket_address(socket_path) as address:
            await sock.bind(address)
    finally:
        os.umask(old_umask)
    sock.listen(64)
    listener = trio.SocketListener(sock)
    connections = _Connections()
    try:
        async with trio.open_nursery() as nursery:
            task_status.started()
            async with listener:
                while True:
                    try:
                        stream = await listener.accept()
                    except OSError as exc:  # EMFILE/ENFILE: out of descriptors, for now
                        log.warning("control socket cannot accept: %r", exc)
                        await trio.sleep(ACCEPT_BACKOFF_S)
                        continue
                    ident = await connections.admit()
                    nursery.start_soon(connections.serve, ident, stream, token, handlers)
    finally:
        with contextlib.suppress(FileNotFoundError):
            socket_path.unlink()
        with contextlib.suppress(FileNotFoundError):
            token_file.unlink()
