"""The one seam for blocking work (the embedded chain, web3, files) called from trio.

`run_blocking(fn, *args)` runs `fn` in a worker thread (`trio.to_thread.run_sync`). The runner
is looked up in a context variable, which trio tasks inherit when they are spawned, so a test
can run every call inline on the trio thread instead (`lilypad_p2p.testing.inline_blocking`):
under `MockClock(autojump_threshold=0)` a worker thread looks to trio like every task is
blocked, and the clock would jump past deadlines the work never reached.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from functools import partial
from typing import Protocol, TypeVar

import trio

T = TypeVar("T")


class BlockingRunner(Protocol):
    """Runs one blocking call for trio and returns its result."""

    async def __call__(
        self, call: Callable[[], T], limiter: trio.CapacityLimiter | None
    ) -> T: ...


async def in_worker_thread(call: Callable[[], T], limiter: trio.CapacityLimiter | None) -> T:
    """The node's runner: a trio worker thread, within `limiter` (trio's default if None)."""
    return await trio.to_thread.run_sync(call, limiter=limiter)


BLOCKING_RUNNER: ContextVar[BlockingRunner] = ContextVar(
    "lilypad_p2p_blocking_runner", default=in_worker_thread)


async def run_blocking(
    fn: Callable[..., T], *args: object, limiter: trio.CapacityLimiter | None = None
) -> T:
    """`fn(*args)` off the trio thread (by default), without holding up other tasks.

    Like `trio.to_thread.run_sync`, it is a checkpoint, and a cancelled caller waits for the
    call to finish.
    """
    return await BLOCKING_RUNNER.get()(partial(fn, *args), limiter)
