"""`EagerLock`: fewer scheduler passes per frame, same semantics."""

import trio
import trio.testing
from libp2p.io.trio import TrioTCPStream

from lilypad_p2p.net._eager_lock import EagerLock, make_eager


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
