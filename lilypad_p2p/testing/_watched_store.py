"""A deal store that wakes its waiters on every change, so a test waits for a phase rather
than polling for it (the store is written from the trio thread only)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from lilypad_p2p.store import DealStore


class WatchedStore(DealStore):
    """A `DealStore` whose `until` returns once a condition on it holds."""

    _changed: trio.Event | None = None

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        if self._changed is not None:
            self._changed.set()

    async def until(self, holds: Callable[[], bool]) -> None:
        """Wait until `holds()` is true, checking it after each update of a deal."""
        while not holds():
            self._changed = trio.Event()
            await self._changed.wait()

    def phase(self, key: str) -> str | None:
        stored = self.get(key)
        return None if stored is None else stored.record.phase.value
