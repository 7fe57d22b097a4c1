"""A byte-for-byte forwarder in front of a real service (anvil's RPC, the Docker engine's
socket), which a test stops and starts to cut the path to it as a dead network or a stopped
engine would: the service itself, shared with other tests, keeps running.

    with Forwarder.tcp(anvil_port) as rpc, Forwarder.unix(sock, "/var/run/docker.sock") as dk:
        rpc.stop()   # connection refused, open connections reset
        rpc.start()  # the same address answers again
"""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path

BUFFER_BYTES = 65536


class Forwarder:
    """Listens on one address and pipes each connection to `target`."""

    def __init__(self, family: int, listen: str | tuple[str, int],
                 target: str | tuple[str, int]) -> None:
        self._family, self._listen, self._target = family, listen, target
        self._server: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    @classmethod
    def tcp(cls, target_port: int, port: int = 0) -> Forwarder:
        """On 127.0.0.1 (a free port unless `port`), to 127.0.0.1:`target_port`."""
        return cls(socket.AF_INET, ("127.0.0.1", port), ("127.0.0.1", target_port))

    @classmethod
    def unix(cls, path: Path, target: str) -> Forwarder:
        return cls(socket.AF_UNIX, str(path), target)

    @property
    def port(self) -> int:
        assert isinstance(self._listen, tuple)
        return self._listen[1]

    def start(self) -> None:
        server = socket.socket(self._family, socket.SOCK_STREAM)
        if self._family == socket.AF_UNIX:
            Path(str(self._listen)).unlink(missing_ok=True)
        else:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(self._listen)
        if self._family == socket.AF_INET:
            self._listen = server.getsockname()  # keep the port across stop/start
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def stop(self) -> None:
        """Refuse new connections and reset the open ones."""
        server, self._server = self._server, None
        if server is not None:
            with contextlib.suppress(OSError):
                server.shutdown(socket.SHUT_RDWR)
            server.close()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def __enter__(self) -> Forwarder:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            try:
                upstream = socket.socket(self._family, socket.SOCK_STREAM)
                upstream.connect(self._target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(BUFFER_BYTES):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

