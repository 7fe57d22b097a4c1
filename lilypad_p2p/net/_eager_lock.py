"""A lock that is taken at once when free, for py-libp2p's per-frame locks.

`trio.Lock.acquire` passes through the scheduler even when nobody holds the lock (a
checkpoint). py-libp2p takes three to five such locks per frame a gossip message costs (the TCP
stream's read or write lock, the muxer's write lock, the stream's window and state locks), and
they are almost never contended: a message then cost that many extra scheduler passes on each
side. `EagerLock` is a `trio.Lock` that, free, is taken without that pass; held, its waiters
queue on the `trio.Lock` inside, first come first served, as before. The I/O the lock guards
still checkpoints, so cancellation and fairness between tasks are unchanged where it matters.

`make_eager(owner, name)` swaps one library-created lock for an `EagerLock`, only while the
lock is free (a held one stays, so nobody is ever holding the wrong lock).
"""

from __future__ import annotations

from types import TracebackType

import trio


class EagerLock:
    """A `trio.Lock` whose uncontended acquire does not pass through the scheduler."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = trio.Lock()

    async def acquire(self) -> None:
        try:
            self._lock.acquire_nowait()
        except trio.WouldBlock:
            await self._lock.acquire()

    def acquire_nowait(self) -> None:
        self._lock.acquire_nowait()

    def release(self) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()

    def statistics(self) -> trio.LockStatistics:
        return self._lock.statistics()

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._lock.release()


def make_eager(owner: object, name: str) -> None:
    """Replace `owner.<name>`, a free `trio.Lock`, with an `EagerLock`."""
    lock = getattr(owner, name, None)
    if isinstance(lock, trio.Lock) and not lock.locked():
        setattr(owner, name, EagerLock())
