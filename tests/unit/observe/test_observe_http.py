"""The observe HTTP server against misbehaving clients, on a real loopback socket."""

import contextlib

import trio

from lilypad_p2p.observe import MAX_REQUEST_BYTES, ObserveServer, Response


async def ok(query):
    return Response(200, b"fine")


async def broken(query):
    raise RuntimeError("a bug in a page")


async def exchange(port: int, data: bytes) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(data)
        answer = b""
        with trio.move_on_after(5):
            while chunk := await stream.receive_some(65536):
                answer += chunk
        return answer


async def test_bad_clients_cost_one_connection_each():
    server = ObserveServer({"/": ok, "/healthz": ok, "/broken": broken}, token="s3cret-token-123")
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.run, "127.0.0.1", 0)
        assert (await exchange(port, b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")).endswith(b"fine")
        assert b" 401 " in await exchange(port, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        authorized = b"GET / HTTP/1.1\r\nhost: x\r\nauthorization: Bearer s3cret-token-123\r\n\r\n"
        assert (await exchange(port, authorized)).endswith(b"fine")
        assert b" 500 " in await exchange(port, authorized.replace(b"GET /", b"GET /broken"))
        assert b" 405 " in await exchange(port, b"DELETE /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        assert b" 404 " in await exchange(port, b"GET /nope HTTP/1.1\r\nhost: x\r\n\r\n")
        huge = b"GET /healthz HTTP/1.1\r\nx: " + b"a" * (MAX_REQUEST_BYTES + 10) + b"\r\n\r\n"
        with trio.move_on_after(5), contextlib.suppress(trio.BrokenResourceError):
            assert b" 200 " not in await exchange(port, huge)
        with contextlib.suppress(trio.BrokenResourceError):
            assert b" 200 " not in await exchange(port, b"\x16\x03\x01 not http\r\n\r\n")
        # Many idle connections do not stop an honest request from being answered.
        idle = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(20)]
        assert (await exchange(port, b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")).endswith(b"fine")
        for stream in idle:
            await stream.aclose()
        nursery.cancel_scope.cancel()
