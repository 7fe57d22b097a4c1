"""Which of our own long-lived offers are due for re-publishing. Pure; time is an argument.

An envelope is only accepted for `ENVELOPE_MAX_AGE_MS` after it was published, and nodes that
join later never saw it. So an owner re-signs the same body (same offer ID) with a fresh
`published_at` every `REPUBLISH_INTERVAL_MS` until the offer expires or is cancelled. Receivers
that know the offer keep it as it is; newcomers learn it.
"""

from __future__ import annotations

import heapq

from lilypad_p2p.wire import ENVELOPE_MAX_AGE_MS, Offer

# Under the offer-sync freshness bound (ENVELOPE_MAX_AGE_MS less
# node_publish.SYNC_FRESHNESS_MARGIN_MS, 580 s), so the copy peers hold can always be synced to
# newcomers. Every round is gossiped to every node, so it is as rare as that bound allows:
# peers that missed a round pull the offer by offer sync (`net._sync`), not by waiting for the
# next one.
REPUBLISH_INTERVAL_MS = 480_000


class Republisher:
    """Tracks our own offers; `take_due(now_ms)` says which to re-publish now."""

    def __init__(self, interval_ms: int = REPUBLISH_INTERVAL_MS) -> None:
        if not 0 < interval_ms <= ENVELOPE_MAX_AGE_MS:
            raise ValueError(f"interval_ms must be in (0, {ENVELOPE_MAX_AGE_MS}]")
        self._interval_ms = interval_ms
        self._offers: dict[str, Offer] = {}
        self._due_at: dict[str, int] = {}
        # (due_at, offer_id); stale entries (re-scheduled or untracked) are skipped when popped.
        self._schedule: list[tuple[int, str]] = []

    def track(self, offer: Offer, published_at_ms: int) -> None:
        """Start tracking `offer`, which we just published at `published_at_ms`."""
        offer_id = offer.cid
        self._offers[offer_id] = offer
        self._schedule_at(offer_id, published_at_ms + self._interval_ms)

    def untrack(self, offer_id: str) -> bool:
        """Stop re-publishing (the offer was cancelled or matched); False if not tracked."""
        self._due_at.pop(offer_id, None)
        return self._offers.pop(offer_id, None) is not None

    def take_due(self, now_ms: int) -> list[Offer]:
        """Offers to re-publish now, in due order; they count as re-published at `now_ms`.

        Offers that have expired are dropped instead.
        """
        due = []
        while self._schedule and self._schedule[0][0] <= now_ms:
            due_at, offer_id = heapq.heappop(self._schedule)
            if self._due_at.get(offer_id) != due_at:
                continue
            offer = self._offers[offer_id]
            if offer.expires_at <= now_ms:
                self.untrack(offer_id)
                continue
            due.append(offer)
        for offer in due:
            self._schedule_at(offer.cid, now_ms + self._interval_ms)
        return due

    def next_due_ms(self) -> int | None:
        """When `take_due` next has something to do (sleep until then), or None."""
        while self._schedule and self._due_at.get(self._schedule[0][1]) != self._schedule[0][0]:
            heapq.heappop(self._schedule)
        return self._schedule[0][0] if self._schedule else None

    def tracked(self) -> list[str]:
        """IDs of the offers being re-published, sorted."""
        return sorted(self._offers)

    def __len__(self) -> int:
        return len(self._offers)

    def _schedule_at(self, offer_id: str, due_at: int) -> None:
        self._due_at[offer_id] = due_at
        heapq.heappush(self._schedule, (due_at, offer_id))
