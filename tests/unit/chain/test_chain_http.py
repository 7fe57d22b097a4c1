"""The kept-alive JSON-RPC transport against a real HTTP server on loopback: it reuses one
connection, survives a server that dropped it, and reports HTTP errors as web3's does."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from lilypad_p2p.chain import RpcUnavailable, _backend, open_rpc_chain
from lilypad_p2p.chain._http import KeptAliveHTTPProvider


class FakeNode(ThreadingHTTPServer):
    """Answers eth_chainId with 7 (or `status`), counting connections and requests."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.status = 200
        self.close_after_answer = False
        self.connections: set[int] = set()
        self.requests = 0
        self.authorization: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless we close
    server: FakeNode

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.connections.add(self.client_address[1])
        self.server.requests += 1
        self.server.authorization = self.headers.get("Authorization")
        body = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": "0x7"}).encode()
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if self.server.close_after_answer:  # silently, as an idle timeout does
            self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def node() -> Iterator[FakeNode]:
    server = FakeNode()
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def chain_id(provider: KeptAliveHTTPProvider) -> str:
    return provider.make_request("eth_chainId", [])["result"]  # type: ignore[arg-type]


def test_requests_share_one_kept_connection(node: FakeNode) -> None:
    provider = KeptAliveHTTPProvider(node.url, 5.0)
    assert [chain_id(provider) for _ in range(5)] == ["0x7"] * 5
    assert (node.requests, len(node.connections)) == (5, 1)


def test_a_connection_the_server_dropped_is_replaced_at_once(node: FakeNode) -> None:
    node.close_after_answer = True
    provider = KeptAliveHTTPProvider(node.url, 5.0)
    assert [chain_id(provider) for _ in range(3)] == ["0x7"] * 3
    assert len(node.connections) == 3


def test_concurrent_requests_each_get_a_connection(node: FakeNode) -> None:
    provider = KeptAliveHTTPProvider(node.url, 5.0)
    answers: list[str] = []
    threads = [threading.Thread(target=lambda: answers.append(chain_id(provider)))
               for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == ["0x7"] * 6


def test_credentials_in_the_url_go_as_basic_auth(node: FakeNode) -> None:
    url = node.url.replace("http://", "http://user:p%40ss@")
    assert chain_id(KeptAliveHTTPProvider(url, 5.0)) == "0x7"
    assert node.authorization == "Basic dXNlcjpwQHNz"  # user:p@ss


def test_http_errors_are_typed_as_web3_types_them(node: FakeNode) -> None:
    provider = KeptAliveHTTPProvider(node.url, 5.0)
    node.status = 401
    with pytest.raises(requests.HTTPError) as raised:
        chain_id(provider)
    assert raised.value.response is not None and raised.value.response.status_code == 401
    node.status = 429
    with pytest.raises(ConnectionError, match="limits our rate"):
        chain_id(provider)


def test_a_failing_node_is_retried_then_unavailable(node: FakeNode,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_backend.time, "sleep", lambda _: None)
    node.status = 503
    with pytest.raises(RpcUnavailable, match="503"):
        open_rpc_chain(node.url)
    assert node.requests == _backend.RPC_ATTEMPTS
    node.status, node.requests = 401, 0
    with pytest.raises(RpcUnavailable, match="401"):
        open_rpc_chain(node.url)
    assert node.requests == 1


def test_an_rpc_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(RpcUnavailable, match="not an http:// or https:// URL"):
        open_rpc_chain("ws://127.0.0.1:8545")


def test_nothing_listening_is_a_connection_error() -> None:
    provider = KeptAliveHTTPProvider("http://127.0.0.1:9", 5.0)  # discard port: nothing listens
    with pytest.raises(ConnectionError) as raised:
        chain_id(provider)
    assert raised.value.__cause__ is not raised.value


def test_an_endpoint_behind_a_proxy_keeps_the_libraries_transport(
    node: FakeNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy in the environment is honoured as requests honours it (http.client would
    ignore it); NO_PROXY exempts the endpoint."""
    for name in ("http_proxy", "https_proxy", "no_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    assert KeptAliveHTTPProvider("http://rpc.example:8545", 5.0).proxied
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    direct = KeptAliveHTTPProvider(node.url, 5.0)
    assert not direct.proxied
    assert chain_id(direct) == "0x7"
