"""The control server on a real Unix socket, called by the real blocking client."""

import stat

import pytest
import trio

from lilypad_p2p.control import ControlError, NodeNotRunning, call, serve_control
from lilypad_p2p.errors import LilypadError


async def echo(params):
    return {"echo": params}


async def refuse(params):
    raise LilypadError("no such offer")


async def explode(params):
    raise RuntimeError("bug")


HANDLERS = {"echo": echo, "refuse": refuse, "explode": explode}


@pytest.fixture(params=["shallow", "deep"])
def home(request, tmp_path):
    """A node home; a deep one's socket path is longer than a socket address holds."""
    if request.param == "shallow":
        return tmp_path
    deep = tmp_path / ("d" * 100) / ("e" * 100)
    deep.mkdir(parents=True)
    return deep


async def test_calls_errors_and_cleanup(home):
    sock, token = home / "control.sock", home / "control.token"
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_control, sock, token, HANDLERS)
        assert stat.S_IMODE(token.stat().st_mode) == 0o600
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600

        def client_calls():
            assert call(home, "echo", {"x": 1}) == {"echo": {"x": 1}}
            with pytest.raises(ControlError, match="no such offer"):
                call(home, "refuse")
            with pytest.raises(ControlError, match="internal error in explode"):
                call(home, "explode")
            with pytest.raises(ControlError, match="unknown method 'nope'"):
                call(home, "nope")
            real = token.read_text()
            token.write_text("0" * 64)
            try:
                with pytest.raises(ControlError, match="bad control token"):
                    call(home, "echo")
            finally:
                token.write_text(real)

        await trio.to_thread.run_sync(client_calls)
        nursery.cancel_scope.cancel()
    assert not sock.exists() and not token.exists()


async def test_no_node_running(tmp_path):
    with pytest.raises(NodeNotRunning, match="start one with"):
        call(tmp_path, "status")


async def test_refuses_to_start_beside_a_live_node(home):
    sock, token = home / "control.sock", home / "control.token"
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_control, sock, token, HANDLERS)
        with pytest.raises(LilypadError, match="already running"):
            await serve_control(sock, home / "other.token", HANDLERS)
        nursery.cancel_scope.cancel()


async def test_stale_socket_is_replaced(tmp_path):
    import socket

    sock_path = tmp_path / "control.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(sock_path))
    stale.close()  # the file stays, nobody listens: what a crashed node leaves behind
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_control, sock_path, tmp_path / "control.token", HANDLERS)
        assert await trio.to_thread.run_sync(call, tmp_path, "echo") == {"echo": {}}
        nursery.cancel_scope.cancel()
