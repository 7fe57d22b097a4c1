"""`EagerLock` and `ReadAheadTCPStream`: fewer scheduler passes per frame, same semantics."""

import pytest
import trio
import trio.testing
from libp2p.io.trio import TrioTCPStream

from lilypad_p2p.net._eager_lock import EagerLock, make_eager
from lilypad_p2p.net._yamux import READ_AHEAD_BYTES, ReadAheadTCPStream


async def test_a_free_lock_is_taken_without_a_scheduler_pass():
    lock = EagerLock()
    with trio.testing.assert_no_checkpoints():
        async with lock:
            assert lock.locked()
    assert not lock.locked()


async def test_a_held_lock_queues_its_waiters_in_arrival_order():
    lock, order = EagerLock(), []

    async def take(name: str) -> None:
        async with lock:
            order.append(name)
            await trio.sleep(0)

    async with trio.open_nursery() as nursery:
        await lock.acquire()
        for name in "abc":
            nursery.start_soon(take, name)
            await trio.testing.wait_all_tasks_blocked()
        assert lock.statistics().tasks_waiting == 3
        lock.release()
    assert order == ["a", "b", "c"]


async def test_a_cancelled_waiter_leaves_the_lock_to_the_others():
    lock, release = EagerLock(), trio.Event()

    async def hold() -> None:
        async with lock:
            await release.wait()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(hold)
        await trio.testing.wait_all_tasks_blocked()
        with trio.move_on_after(0.01) as scope:
            await lock.acquire()
        assert scope.cancelled_caught
        assert lock.statistics().tasks_waiting == 0
        release.set()
    with trio.testing.assert_no_checkpoints():
        lock.acquire_nowait()


async def test_make_eager_swaps_only_a_free_trio_lock():
    class Owner:
        def __init__(self) -> None:
            self.free, self.held, self.other = trio.Lock(), trio.Lock(), object()

    owner = Owner()
    held = owner.held
    held.acquire_nowait()
    for name in ("free", "held", "other", "missing"):
        make_eager(owner, name)
    assert isinstance(owner.free, EagerLock)
    assert owner.held is held
    assert not isinstance(owner.other, EagerLock)
    assert not hasattr(owner, "missing")


@pytest.fixture
async def tcp_pair():
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    client = await trio.open_tcp_stream("127.0.0.1", port)
    server = await listeners[0].accept()
    yield client, server
    await client.aclose()
    await server.aclose()
    await listeners[0].aclose()


def _read_ahead(socket_stream: trio.SocketStream) -> TrioTCPStream:
    stream = TrioTCPStream(socket_stream)
    ReadAheadTCPStream.adopt(stream)
    return stream


def _count_calls(owner: object, name: str) -> list[int]:
    """Count the calls of `owner`'s async method `name` from now on (in a one-item list)."""
    calls, method = [0], getattr(owner, name)

    async def counted(*args):
        calls[0] += 1
        return await method(*args)

    setattr(owner, name, counted)
    return calls


async def test_reads_ahead_and_hands_out_exactly_what_each_read_asks(tcp_pair):
    client, server = tcp_pair
    stream = _read_ahead(server)
    frames = [b"\x00\x05hello", b"\x00\x03abc", b"\x00\x01z"]
    await client.send_all(b"".join(frames))
    await trio.testing.wait_all_tasks_blocked()
    got = []
    for frame in frames:
        got.append(await stream.read(2) + await stream.read(len(frame) - 2))
    assert got == frames
    assert await stream.read(0) == b""
    await client.send_all(b"rest")
    assert await stream.read() == b"rest"
    await client.aclose()
    assert await stream.read(10) == b""


async def test_one_receive_serves_every_frame_that_arrived_with_it(tcp_pair):
    client, server = tcp_pair
    stream = _read_ahead(server)
    receives = _count_calls(server, "receive_some")
    await client.send_all(b"x" * 1000)
    await trio.testing.wait_all_tasks_blocked()
    for _ in range(10):
        assert await stream.read(100) == b"x" * 100
    assert receives == [1]
    assert READ_AHEAD_BYTES >= 64 * 1024


def test_the_library_locks_we_make_eager_are_still_created_where_we_look():
    import inspect

    from libp2p.network.stream.net_stream import NetStream
    from libp2p.stream_muxer.yamux.yamux import Yamux, YamuxStream

    # `make_eager` skips a lock that is not there, so a move would silently undo the lever.
    assert "self._state_lock = trio.Lock()" in inspect.getsource(NetStream.__init__)
    assert "self.window_lock = trio.Lock()" in inspect.getsource(YamuxStream.__init__)
    for lock in ("self.streams_lock = trio.Lock()", "self._write_lock = trio.Lock()"):
        assert lock in inspect.getsource(Yamux.__init__)
    for lock in ("self.read_lock = trio.Lock()", "self.write_lock = trio.Lock()"):
        assert lock in inspect.getsource(TrioTCPStream.__init__)


async def test_writes_go_straight_to_the_socket_and_queue_behind_one_that_waits(tcp_pair):
    client, server = tcp_pair
    stream = _read_ahead(server)
    through_trio = _count_calls(server, "send_all")
    for index in range(10):
        await stream.write(b"frame%d;" % index)
    assert through_trio == [0]
    expected = b"".join(b"frame%d;" % index for index in range(10))
    received = bytearray()
    while len(received) < len(expected):
        received += await client.receive_some()
    assert bytes(received) == expected

    # More than the kernel takes at once: the rest goes through trio, which waits for room, and
    # a write that comes meanwhile waits its turn behind it.
    blob, tail = bytes(range(256)) * 32768, b"tail"
    received.clear()

    async def read_all() -> None:
        while len(received) < len(blob) + len(tail):
            await trio.sleep(0.001)
            received.extend(await client.receive_some(65536))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream.write, blob)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(stream.write, tail)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(read_all)
    assert through_trio == [2]
    assert bytes(received) == blob + tail
