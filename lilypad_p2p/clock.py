"""One clock for a node: wall-clock milliseconds read off trio's clock.

Signed timestamps and deal deadlines are wall-clock milliseconds; roles sleep on trio's clock.
Reading both from one source (trio's clock plus a wall-clock offset) keeps them in step: under
trio's `MockClock` a role's deadlines move with its sleeps. A node's clock re-fixes its offset
when the system clock steps away from it (NTP, a resumed laptop or VM: trio's monotonic clock
does not count a suspend), so a real node reads the wall time it always read.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import trio

# How far the system clock may drift or step from a node's clock before the node follows it.
WALL_STEP_MS = 1_000


def wall_clock_ms() -> int:
    """The one read of the system's wall clock: milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


class Clock:
    """Wall-clock milliseconds that advance with `trio.current_time()`.

    Calling it (or `now_ms()`) gives the time; it is a `Callable[[], int]` wherever a role
    takes `clock_ms`. The offset is fixed at the first reading, inside `trio.run`.

    Args:
        start_ms: the first reading, for tests under `MockClock` (from then on the clock
            follows trio's clock alone). None: a node's clock, which starts at `wall()` and
            follows it whenever the two part by more than WALL_STEP_MS.
        wall: the system clock (a test double in the clock's own tests).

    Use one clock per `trio.run`: trio's clock has its own origin in each run.
    """

    def __init__(
        self, start_ms: int | None = None, *, wall: Callable[[], int] = wall_clock_ms
    ) -> None:
        self._start_ms = start_ms
        self._wall = wall
        self._offset_ms: float | None = None

    def now_ms(self) -> int:
        """Milliseconds since the epoch: the offset plus trio's clock."""
        trio_ms = trio.current_time() * 1000
        if self._offset_ms is None:
            start = self._wall() if self._start_ms is None else self._start_ms
            self._offset_ms = start - trio_ms
        elif self._start_ms is None:
            wall = self._wall()
            if abs(wall - (self._offset_ms + trio_ms)) > WALL_STEP_MS:
                self._offset_ms = wall - trio_ms
        # Rounded, not floored: 0.29 s of trio time is 289.99999999999994 ms as a float.
        return round(self._offset_ms + trio_ms)

    def __call__(self) -> int:
        return self.now_ms()
