"""A bound in real seconds for tests whose trio clock is a frozen `MockClock`: trio's own
timeouts never fire there, and a wait that never ends must still end the test."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import trio


@contextmanager
def real_time_limit(seconds: float) -> Iterator[None]:
    """Cancel the block after `seconds` of real time, and fail with `trio.TooSlowError`."""
    scope = trio.CancelScope()
    token = trio.lowlevel.current_trio_token()

    def cancel() -> None:
        with suppress(trio.RunFinishedError):  # the test ended first
            token.run_sync_soon(scope.cancel)

    timer = threading.Timer(seconds, cancel)
    timer.start()
    try:
        with scope:
            yield
    finally:
        timer.cancel()
    if scope.cancelled_caught:
        raise trio.TooSlowError(f"not done in {seconds} s of real time")
