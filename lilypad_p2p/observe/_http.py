"""A small read-only HTTP/1.1 server on trio and h11 for metrics, health and the status page.

h11 parses and frames; this module only moves bytes and applies the limits an exposed
listener needs: one request per connection (`Connection: close`), a bounded request head, a
bounded time to send it, GET/HEAD only, and a bearer token when one is configured. A client
that misbehaves gets its connection closed; nothing it sends can end the server.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import h11
import trio

log = logging.getLogger(__name__)

# The longest request head we read; a GET for a status page needs a few hundred bytes.
MAX_REQUEST_BYTES = 16 * 1024
# Time a client has to send its request and to take our answer.
REQUEST_TIMEOUT_S = 10.0
# Connections served at once; more wait in the listen backlog.
MAX_CONNECTIONS = 64


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


Route = Callable[[dict[str, list[str]]], Awaitable[Response]]


class ObserveServer:
    """Serves `routes` (path -> handler) on `host:port`; a token, if set, is required as
    `Authorization: Bearer <token>` or `?token=` (for a browser) on every path but /healthz."""

    def __init__(self, routes: dict[str, Route], token: str | None = None) -> None:
        self._routes = routes
        self._token = token
        self._slots = trio.Semaphore(MAX_CONNECTIONS)
        self.port: int | None = None

    async def run(
        self, host: str, port: int, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        listeners = await trio.open_tcp_listeners(port, host=host)
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            task_status.started(self.port)
            for listener in listeners:
                nursery.start_soon(self._accept, listener)

    async def _accept(self, listener: trio.SocketListener) -> None:
        async with listener, trio.open_nursery() as nursery:
            while True:
                await self._slots.acquire()
                try:
                    stream = await listener.accept()
                except OSError:
                    self._slots.release()
                    await trio.sleep(0.1)  # out of descriptors: do not spin
                    continue
                nursery.start_soon(self._serve, stream)

    async def _serve(self, stream: trio.SocketStream) -> None:
        try:
            with trio.move_on_after(REQUEST_TIMEOUT_S):
                await self._exchange(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError, OSError):
            pass  # the client went away or spoke nonsense: nothing to answer
        except Exception:  # a bug here must cost one connection, never the node
            log.exception("observe: a connection failed")
        finally:
            self._slots.release()
            with trio.move_on_after(1):
                await stream.aclose()

    async def _exchange(self, stream: trio.SocketStream) -> None:
        connection = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_BYTES)
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(4096)
                connection.receive_data(data)  # b"" marks the end; h11 then raises or closes
                if not data and connection.their_state is not h11.DONE:
                    return
                continue
            if isinstance(event, h11.Request):
                break
            return
        response = await self._answer(event)
        head_only = event.method == b"HEAD"
        headers = [
            ("content-type", response.content_type),
            ("content-length", str(len(response.body))),
            ("cache-control", "no-store"),
            ("x-content-type-options", "nosniff"),
            ("connection", "close"),
        ]
        await stream.send_all(connection.send(h11.Response(
            status_code=response.status, headers=headers
        )))
        if not head_only:
            await stream.send_all(connection.send(h11.Data(data=response.body)))
        await stream.send_all(connection.send(h11.EndOfMessage()))

    async def _answer(self, request: h11.Request) -> Response:
        if request.method not in (b"GET", b"HEAD"):
            return Response(405, b"read-only: GET or HEAD\n")
        target = urlsplit(request.target.decode("ascii", "replace"))
        query = parse_qs(target.query)
        route = self._routes.get(target.path)
        if route is None:
            return Response(404, b"not found; try /, /metrics, /healthz, /readyz\n")
        if target.path != "/healthz" and not self._authorized(request, query):
            return Response(401, b"token required: Authorization: Bearer <token> or ?token=\n")
        try:
            return await route(query)
        except Exception:  # a bug in one page must not take the listener down
            log.exception("observe: %s failed", target.path)
            return Response(500, b"internal error; see the node's log\n")

    def _authorized(self, request: h11.Request, query: dict[str, list[str]]) -> bool:
        if self._token is None:
            return True
        offered = query.get("token", [""])[0]
        for name, value in request.headers:
            if name == b"authorization" and value.startswith(b"Bearer "):
                offered = value[len(b"Bearer "):].decode("ascii", "replace")
        return hmac.compare_digest(offered.encode(), self._token.encode())
