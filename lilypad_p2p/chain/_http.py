"""JSON-RPC over HTTP on kept-alive connections: web3's HTTPProvider with only its POST swapped.

web3 posts each request through requests (a session, its adapters and hooks, urllib3's pool):
0.67 ms of CPU per request against a local node, where http.client on a kept-alive connection
takes 0.14 ms (RESULTS.md "Chain requests: fewer, and each cheaper"). A node sends tens of
requests per deal, so `KeptAliveHTTPProvider` overrides `_make_request` alone; encoding,
decoding and web3's request caching stay the library's, and `Chain.rpc` still retries what
fails in passing.
"""

from __future__ import annotations

import base64
import http.client
import threading
from typing import Any, NoReturn
from urllib.parse import unquote, urlsplit

import requests
from web3 import HTTPProvider
from web3.types import RPCEndpoint

# Idle connections kept per endpoint; a burst of concurrent requests opens more, closed after.
MAX_IDLE_CONNECTIONS = 8
# "Too many requests": a public endpoint's rate limit, over in a moment.
_RATE_LIMITED = 429

_Connection = http.client.HTTPConnection


class KeptAliveHTTPProvider(HTTPProvider):
    """An `HTTPProvider` that keeps its connections open between requests, across threads.

    Raises, per request: `ConnectionError` or `TimeoutError` when the endpoint cannot be
    reached (after one fresh try if a kept connection had gone stale) or limits our rate, and
    `requests.HTTPError` (with the response's status) for any other HTTP error, as web3's own
    does: `Chain.rpc` retries the first kind and 5xx, and reports the rest.
    """

    def __init__(self, endpoint_uri: str, timeout_s: float) -> None:
        super().__init__(endpoint_uri, request_kwargs={"timeout": timeout_s},
                         exception_retry_configuration=None)
        parts = urlsplit(endpoint_uri)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"rpc_url {endpoint_uri!r} is not an http:// or https:// URL")
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname, parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._timeout_s = timeout_s
        self._headers = {"Content-Type": "application/json", "User-Agent": "lilypad-p2p"}
        if parts.username is not None:
            secret = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            self._headers["Authorization"] = "Basic " + base64.b64encode(secret.encode()).decode()
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        # http.client knows no proxies: an endpoint the environment sends through one
        # (HTTPS_PROXY and NO_PROXY, as requests reads them) keeps web3's own transport.
        self.proxied = bool(requests.utils.get_environ_proxies(endpoint_uri))

    def _make_request(self, method: RPCEndpoint, request_data: bytes) -> bytes:
        if self.proxied:
            return super()._make_request(method, request_data)
        connection, kept = self._take()
        try:
            response = self._post(connection, request_data)
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            if not kept:
                _raise_unreachable(exc)
            # A kept connection the server has since closed fails on first use: one new try.
            connection = self._connect()
            try:
                response = self._post(connection, request_data)
            except (OSError, http.client.HTTPException) as retried:
                connection.close()
                _raise_unreachable(retried)
        status, reason, body = response
        self._give_back(connection)
        if status == _RATE_LIMITED:
            raise ConnectionError(f"{self.endpoint_uri} limits our rate (HTTP {status})")
        if status >= 300:
            raise requests.HTTPError(
                f"{status} {reason} from {self.endpoint_uri}", response=_response(status, reason)
            )
        return body

    def _post(self, connection: _Connection, data: bytes) -> tuple[int, str, bytes]:
        connection.request("POST", self._path, body=data, headers=self._headers)
        response = connection.getresponse()
        body = response.read()  # all of it, so the connection can carry the next request
        return response.status, response.reason, body

    def _take(self) -> tuple[_Connection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return self._connect(), False

    def _give_back(self, connection: _Connection) -> None:
        with self._lock:
            if len(self._idle) < MAX_IDLE_CONNECTIONS:
                self._idle.append(connection)
                return
        connection.close()

    def _connect(self) -> _Connection:
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout_s)
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout_s)


def _raise_unreachable(exc: OSError | http.client.HTTPException) -> NoReturn:
    """Raise `exc` as a `ConnectionError` or `TimeoutError` (what `Chain.rpc` retries)."""
    if isinstance(exc, ConnectionError | TimeoutError):
        raise exc
    raise ConnectionError(str(exc) or repr(exc)) from exc


def _response(status: int, reason: str) -> Any:
    response = requests.Response()
    response.status_code, response.reason = status, reason
    return response
