"""Replay guard: each signed envelope is accepted once. Pure; time is an argument.

An envelope is only acceptable while `now - ENVELOPE_MAX_AGE_MS <= published_at <= now +
MAX_CLOCK_SKEW_MS` (`open_envelope` enforces it). So the guard needs to remember an accepted
envelope ID only until `published_at + ENVELOPE_MAX_AGE_MS`: later, the envelope is refused as
stale anyway. Memory is thus bounded by (accepted envelopes per second) x (max age + skew), and
additionally capped by `capacity`.

Re-publishing is not replaying: an owner re-signs the same body with a new `published_at`, which
makes a new envelope ID. The offer book, not the guard, notices the offer is already known.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from lilypad_p2p.wire import ENVELOPE_MAX_AGE_MS, MAX_CLOCK_SKEW_MS, SignedEnvelope

# 200k IDs of ~60 characters: ~40 MB at worst. At gossip's real rate (a few envelopes per
# second) the acceptance window holds a few thousand.
DEFAULT_REPLAY_CAPACITY = 200_000


@dataclass(frozen=True, slots=True)
class ReplayGuardStatistics:
    remembered: int
    accepted: int
    replays: int
    outside_window: int
    refused_full: int


class ReplayGuard:
    """Remembers accepted envelope IDs for as long as the envelopes could be accepted."""

    def __init__(self, capacity: int = DEFAULT_REPLAY_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._forget_at: dict[str, int] = {}
        self._expiry_heap: list[tuple[int, str]] = []
        self._accepted = 0
        self._replays = 0
        self._outside_window = 0
        self._refused_full = 0

    def check_and_record(self, envelope: SignedEnvelope, now_ms: int) -> bool:
        """True (and remember it) if `envelope` is new; False means drop, do not forward.

        False also for an envelope outside the acceptance window (the guard may have forgotten
        it, so it cannot vouch for it) and, fail-safe, when `capacity` IDs are remembered.
        """
        self._forget_until(now_ms)
        published_at = envelope.published_at
        if not now_ms - ENVELOPE_MAX_AGE_MS <= published_at <= now_ms + MAX_CLOCK_SKEW_MS:
            self._outside_window += 1
            return False
        envelope_id = envelope.envelope_id
        if envelope_id in self._forget_at:
            self._replays += 1
            return False
        if len(self._forget_at) >= self._capacity:
            self._refused_full += 1
            return False
        forget_at = published_at + ENVELOPE_MAX_AGE_MS
        self._forget_at[envelope_id] = forget_at
        heapq.heappush(self._expiry_heap, (forget_at, envelope_id))
        self._accepted += 1
        return True

    def __contains__(self, envelope_id: str) -> bool:
        return envelope_id in self._forget_at

    def __len__(self) -> int:
        return len(self._forget_at)

    def statistics(self) -> ReplayGuardStatistics:
        return ReplayGuardStatistics(
            remembered=len(self._forget_at),
            accepted=self._accepted,
            replays=self._replays,
            outside_window=self._outside_window,
            refused_full=self._refused_full,
        )

    def _forget_until(self, now_ms: int) -> None:
        # An ID is kept while published_at >= now - max age, i.e. while forget_at >= now.
        heap = self._expiry_heap
        while heap and heap[0][0] < now_ms:
            _, envelope_id = heapq.heappop(heap)
            del self._forget_at[envelope_id]
