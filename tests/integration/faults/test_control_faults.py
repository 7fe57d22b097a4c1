"""A real node process survives whatever a local client does on its control socket: an empty
connection, a half-closed one, garbage, a line past the size cap, a client that never finishes,
a flood of idle connections. After each the node still answers `status`."""

import contextlib
import socket
import time

import pytest

from lilypad_p2p.config import CONTROL_MAX_LINE
from lilypad_p2p.localnet import LocalCluster

pytestmark = [pytest.mark.net, pytest.mark.slow]


def _connect(home) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(home / "control.sock"))  # blocking: waits while the backlog is full
    sock.settimeout(30)
    return sock


def _answer(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, BrokenPipeError):
        pass
    return data


def test_node_survives_every_client_behaviour(tmp_path):
    cluster = LocalCluster(tmp_path)
    with cluster.running():
        node = cluster.start_node("n")
        node.wait_ready()
        home = node.home

        # Connect and close at once, sending nothing (a health probe, an interrupted CLI).
        for _ in range(20):
            _connect(home).close()
        # Connect, half-close, read what comes back.
        sock = _connect(home)
        sock.shutdown(socket.SHUT_WR)
        assert b"not JSON" in _answer(sock)
        sock.close()
        # Garbage, including invalid UTF-8 and a JSON value of the wrong shape.
        for garbage in (b"\xff\xfe\x00garbage\n", b"[1,2,3]\n", b'{"token":1}\n', b"\n"):
            sock = _connect(home)
            sock.sendall(garbage)
            assert b'"ok":false' in _answer(sock)
            sock.close()
        # A line longer than the cap, sent by a client that then resets the connection.
        sock = _connect(home)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(b"x" * (CONTROL_MAX_LINE + 65536))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
        # A request whose answer the client never reads: it closes before the node replies.
        sock = _connect(home)
        sock.sendall(b'{"token":"x","method":"status","params":{}}\n')
        sock.close()
        # Slow clients holding many connections open without a newline: others still served.
        idle = [_connect(home) for _ in range(100)]
        for held in idle:
            # Past 64 open connections the node drops the oldest unfinished ones.
            with contextlib.suppress(OSError):
                held.sendall(b'{"tok')
        started = time.monotonic()
        assert node.call("status")["address"]
        assert time.monotonic() - started < 10
        for held in idle:
            held.close()

        assert node.process.poll() is None, node.log_tail()
        assert node.call("status")["address"]
        assert node.stop() == 0, node.log_tail()
