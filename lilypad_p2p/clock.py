"""One clock for a node: wall-clock milliseconds read off trio's clock.

Signed timestamps and deal deadlines are wall-clock milliseconds; roles sleep on trio's clock.
Reading both from one source (trio's clock plus a wall-clock offset fixed at the first reading)
keeps them in step: under trio's `MockClock` a role's deadlines move with its sleeps, and a real
node reads the wall time it read before, advancing at the rate of the monotonic clock trio uses.
"""

from __future__ import annotations

import time

import trio


def wall_clock_ms() -> int:
    """The one read of the system's wall clock: milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


class Clock:
    """Wall-clock milliseconds that advance with `trio.current_time()`.

    Calling it (or `now_ms()`) gives the time; it is a `Callable[[], int]` wherever a role
    takes `clock_ms`. The offset is fixed at the first reading, inside `trio.run`, from the
    wall clock, or from `start_ms` when given (tests: a fixed, known start under `MockClock`).
    Use one clock per `trio.run`: trio's clock has its own origin in each run.
    """

    def __init__(self, start_ms: int | None = None) -> None:
        self._start_ms = start_ms
        self._offset_ms: float | None = None

    def now_ms(self) -> int:
        """Milliseconds since the epoch: the offset plus trio's clock."""
        trio_ms = trio.current_time() * 1000
        if self._offset_ms is None:
            start = wall_clock_ms() if self._start_ms is None else self._start_ms
            self._offset_ms = start - trio_ms
        # Rounded, not floored: 0.29 s of trio time is 289.99999999999994 ms as a float.
        return round(self._offset_ms + trio_ms)

    def __call__(self) -> int:
        return self.now_ms()
