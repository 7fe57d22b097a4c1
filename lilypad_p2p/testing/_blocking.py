"""Blocking work run inline on the trio thread, for tests on an autojumping `MockClock`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import trio

from lilypad_p2p.blocking import BLOCKING_RUNNER

T = TypeVar("T")


async def run_inline(call: Callable[[], T], limiter: trio.CapacityLimiter | None) -> T:
    """A checkpoint, then `call()` on the trio thread: no task runs meanwhile, so trio never
    sees the run idle and an autojumping clock stays where the work found it. `limiter` is
    moot: one call at a time runs."""
    await trio.lowlevel.checkpoint()
    return call()


@contextmanager
def inline_blocking() -> Iterator[None]:
    """Within the block, `run_blocking` runs each call inline (see `run_inline`).

    Set in the task that spawns the work (a trio task inherits the context it was spawned in),
    e.g. around a test's nursery or in one of its async fixtures: pytest-trio runs a test and
    its fixtures in one context.
    """
    token = BLOCKING_RUNNER.set(run_inline)
    try:
        yield
    finally:
        BLOCKING_RUNNER.reset(token)
