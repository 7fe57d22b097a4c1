"""Counts and durations the node keeps for its operator view (jobs, image pulls, chain calls).

One `Tally` per thing measured, keyed by a short tuple of labels drawn from fixed sets
(an outcome class, a contract function), never from peers. Recording is a dictionary update
under a lock: chain calls are recorded from worker threads. The metrics endpoint reads a
`snapshot()` at scrape time, so a node without the listener pays only the update.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

# Upper bounds (seconds) of the duration buckets: chain calls take milliseconds, jobs minutes.
DURATION_BOUNDS_S: tuple[float, ...] = (
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
)


@dataclass(slots=True)
class _Durations:
    counts: list[int]
    total_s: float = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(DURATION_BOUNDS_S, seconds)] += 1
        self.total_s += seconds


@dataclass
class Tally:
    """Durations by label tuple; `snapshot()` gives cumulative buckets, count and sum."""

    label_names: tuple[str, ...]
    _by_labels: dict[tuple[str, ...], _Durations] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(self, labels: tuple[str, ...], seconds: float) -> None:
        if len(labels) != len(self.label_names):
            raise ValueError(f"tally {self.label_names} given labels {labels}")
        with self._lock:
            durations = self._by_labels.get(labels)
            if durations is None:
                durations = _Durations([0] * (len(DURATION_BOUNDS_S) + 1))
                self._by_labels[labels] = durations
            durations.observe(max(0.0, seconds))

    @contextmanager
    def timed(
        self,
        classify: Callable[[BaseException | None], tuple[str, ...]],
        clock: Callable[[], float],
    ) -> Iterator[None]:
        """Observe the block's duration under `classify(exception or None)`; re-raises."""
        started = clock()
        try:
            yield
        except BaseException as exc:
            self.observe(classify(exc), clock() - started)
            raise
        self.observe(classify(None), clock() - started)

    def snapshot(self) -> list[dict[str, Any]]:
        """One entry per label tuple: labels, count, sum_s and cumulative `buckets` [(le, n)]
        for the finite bounds (the +Inf bucket is `count`)."""
        with self._lock:
            items = [(labels, list(d.counts), d.total_s) for labels, d in self._by_labels.items()]
        shown = []
        for labels, counts, total_s in sorted(items):
            cumulative, buckets = 0, []
            for bound, count in zip(DURATION_BOUNDS_S, counts, strict=False):
                cumulative += count
                buckets.append((bound, cumulative))
            cumulative += counts[-1]
            shown.append({
                "labels": dict(zip(self.label_names, labels, strict=True)),
                "count": cumulative, "sum_s": round(total_s, 6), "buckets": buckets,
            })
        return shown
