"""`GuardedMplex` streams are full duplex: a write never waits for a pending read.

The stock `MplexStream` of py-libp2p 0.8.1 shares one read/write lock between both
directions, which deadlocked circuit relays (they read and write each stream at once). These
tests pin that library behaviour (so a fixed library shows up here) and our lever's answer.
"""

import inspect

import trio
import trio.testing
from libp2p.peer.id import ID
from libp2p.stream_muxer.mplex.datastructures import StreamID
from libp2p.stream_muxer.mplex.mplex import Mplex
from libp2p.stream_muxer.mplex.mplex_stream import MplexStream

from lilypad_p2p.net._mplex import DuplexStreamLock, GuardedMplex

# Long enough for a write that is not blocked to finish many times over (virtual seconds on
# an autojumping clock: the muxer is in memory, so a blocked write is seen at once).
WRITE_GRACE_S = 1.0
PEER = ID(b"\x00\x25" + bytes(37))


class _RecordingConn:
    """The secured connection under a muxer: records writes, never has anything to read."""

    is_initiator = True

    def __init__(self) -> None:
        self.written: list[bytes] = []

    async def write(self, data: bytes) -> None:
        self.written.append(data)


async def _write_during_pending_read(muxer_class: type[Mplex]) -> bool:
    conn = _RecordingConn()
    muxer = muxer_class(conn, PEER)  # type: ignore[arg-type]
    stream = await muxer.open_stream()
    written = False
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream.read, 10)  # waits: the peer sends nothing
        await trio.testing.wait_all_tasks_blocked()
        with trio.move_on_after(WRITE_GRACE_S):
            await stream.write(b"hello")
            written = True
        nursery.cancel_scope.cancel()
    return written


async def test_stock_mplex_stream_write_waits_for_a_pending_read(autojump_clock):
    assert not await _write_during_pending_read(Mplex)


async def test_guarded_mplex_stream_writes_while_a_read_is_pending(autojump_clock):
    assert await _write_during_pending_read(GuardedMplex)


async def test_guarded_mplex_streams_get_the_duplex_lock_inbound_and_outbound():
    muxer = GuardedMplex(_RecordingConn(), PEER)  # type: ignore[arg-type]
    outbound = await muxer.open_stream()
    assert isinstance(outbound.rw_lock, DuplexStreamLock)  # type: ignore[attr-defined]
    with trio.fail_after(WRITE_GRACE_S):
        # An inbound NewStream frame goes through the same `_initialize_stream`.
        receive = muxer.new_stream_receive_channel
        inbound_id = StreamID(channel_id=7, is_initiator=False)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(muxer._handle_new_stream, inbound_id, b"7")
            inbound = await receive.receive()
    assert isinstance(inbound.rw_lock, DuplexStreamLock)  # type: ignore[attr-defined]


async def test_duplex_lock_serialises_writers():
    lock = DuplexStreamLock()
    order: list[str] = []

    async def writer(name: str) -> None:
        async with lock.write_lock():
            order.append(f"{name} in")
            await trio.sleep(0)
            order.append(f"{name} out")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer, "a")
        nursery.start_soon(writer, "b")
    assert order in (["a in", "a out", "b in", "b out"], ["b in", "b out", "a in", "a out"])


def test_the_library_still_locks_stream_io_through_rw_lock_made_in_initialize_stream():
    assert "self.rw_lock.read_lock()" in inspect.getsource(MplexStream._do_read)
    assert "self.rw_lock.write_lock()" in inspect.getsource(MplexStream._do_write)
    assert "_initialize_stream" in inspect.getsource(Mplex.open_stream)
    assert "_initialize_stream" in inspect.getsource(Mplex._handle_new_stream)
    assert list(inspect.signature(Mplex._initialize_stream).parameters) == [
        "self", "stream_id", "name",
    ]
