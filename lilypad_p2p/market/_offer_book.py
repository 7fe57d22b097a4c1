"""The offer book: the valid, open offers a node knows, by market. Pure; time is an argument.

Feed it envelopes that `open_envelope` (and the replay guard) accepted:
- `add` stores a ResourceOffer/JobOffer under its ID (the body's CID). The same body re-published
  in a fresh envelope is ALREADY_KNOWN: the offer stays as it is (ID, expiry, place), only the
  stored envelope becomes the newer signed copy, so what we hand to syncing peers is fresh.
- `cancel` removes an offer when the Cancel is signed by the offer's owner. The cancelled ID is
  remembered (a tombstone) until the offer would have expired, so a replayed or re-published
  copy cannot bring it back. A Cancel that arrives before its offer leaves a tombstone for that
  (offer ID, owner) until `created_at + MAX_LIFETIME_MS`, the latest any offer created before
  it can expire; it takes effect only if the offer turns out to have that owner.
- `expire` drops offers at their `expires_at` and forgets tombstones whose time has passed.

Bounded memory (a flood of valid offers from throw-away keys must not grow it without bound):
- at most `max_markets` markets; offers for further markets are refused (TOO_MANY_MARKETS);
- at most `max_offers_per_owner` offers per owner per market: beyond it, that owner's offer that
  expires soonest gives way (if that is the newcomer, it is refused: OWNER_LIMIT);
- at most `max_offers_per_market` offers per market: beyond it, the offer that expires soonest
  among the owners holding the most offers gives way (the newcomer counted as held), so a
  flooder evicts its own offers before anyone else's (if the newcomer is the one, BOOK_FULL);
- at most `max_tombstones` tombstones: beyond it, the one due to be forgotten soonest goes.
  Forgetting a tombstone early is mostly harmless: once the cancelled envelope is older than
  the replay window, only the owner's key could re-publish the offer.
Ties in "expires soonest" go to the smaller offer ID, so every node evicts alike.
"""

from __future__ import annotations

import enum
import heapq
from dataclasses import dataclass, field

from lilypad_p2p.wire import (
    MAX_LIFETIME_MS,
    Cancel,
    JobOffer,
    ResourceOffer,
    SignedEnvelope,
)

DEFAULT_MAX_MARKETS = 64
DEFAULT_MAX_OFFERS_PER_MARKET = 4096
DEFAULT_MAX_OFFERS_PER_OWNER = 64
DEFAULT_MAX_TOMBSTONES = 16384


class AddOutcome(enum.Enum):
    ADDED = "added"
    ALREADY_KNOWN = "already_known"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    OWNER_LIMIT = "owner_limit"
    BOOK_FULL = "book_full"
    TOO_MANY_MARKETS = "too_many_markets"


@dataclass(frozen=True, slots=True)
class OfferBookStatistics:
    offers: int
    resource_offers: int
    job_offers: int
    markets: int
    tombstones: int
    added: int
    already_known: int
    refused_cancelled: int
    refused_expired: int
    refused_owner_limit: int
    refused_full: int
    refused_too_many_markets: int
    evicted: int
    expired: int
    cancelled: int
    cancels_not_by_owner: int


@dataclass(slots=True)
class _Entry:
    envelope: SignedEnvelope
    offer_id: str
    market: str
    owner: str
    created_at: int
    expires_at: int


@dataclass(slots=True)
class _Market:
    entries: dict[str, _Entry] = field(default_factory=dict)
    by_owner: dict[str, set[str]] = field(default_factory=dict)


class OfferBook:
    """Open offers by market, with cancellation, expiry and bounded size (see module doc)."""

    def __init__(
        self,
        *,
        max_markets: int = DEFAULT_MAX_MARKETS,
        max_offers_per_market: int = DEFAULT_MAX_OFFERS_PER_MARKET,
        max_offers_per_owner: int = DEFAULT_MAX_OFFERS_PER_OWNER,
        max_tombstones: int = DEFAULT_MAX_TOMBSTONES,
    ) -> None:
        if min(max_markets, max_offers_per_market, max_offers_per_owner, max_tombstones) < 1:
            raise ValueError("every limit must be at least 1")
        self._max_markets = max_markets
        self._max_offers_per_market = max_offers_per_market
        self._max_offers_per_owner = max_offers_per_owner
        self._max_tombstones = max_tombstones
        self._markets: dict[str, _Market] = {}
        self._index: dict[str, _Entry] = {}
        # (expires_at, offer_id); entries removed early stay until popped or compacted.
        self._expiry_heap: list[tuple[int, str]] = []
        self._tombstones: dict[tuple[str, str], int] = {}
        self._tombstone_heap: list[tuple[int, str, str]] = []
        self._counts = dict.fromkeys(
            (
                "added",
                "already_known",
                "refused_cancelled",
                "refused_expired",
                "refused_owner_limit",
                "refused_full",
                "refused_too_many_markets",
                "evicted",
                "expired",
                "cancelled",
                "cancels_not_by_owner",
            ),
            0,
        )

    # --- feeding -------------------------------------------------------------------------

    def add(self, envelope: SignedEnvelope, now_ms: int) -> AddOutcome:
        """Store the offer in `envelope` (already opened and replay-checked).

        Raises:
            TypeError: the body is not a ResourceOffer or JobOffer.
        """
        body = envelope.body
        if not isinstance(body, ResourceOffer | JobOffer):
            raise TypeError(f"OfferBook.add takes offers, not {type(body).__name__}")
        offer_id = body.cid
        owner = body.owner_address
        if body.expires_at <= now_ms:
            return self._count(AddOutcome.EXPIRED, "refused_expired")
        known = self._index.get(offer_id)
        if known is not None:
            # Same body, same owner: the offer is unchanged, but we keep its newest signed copy,
            # since peers that sync from us refuse envelopes older than ENVELOPE_MAX_AGE_MS.
            if envelope.published_at > known.envelope.published_at:
                known.envelope = envelope
            return self._count(AddOutcome.ALREADY_KNOWN, "already_known")
        if (offer_id, owner) in self._tombstones:
            return self._count(AddOutcome.CANCELLED, "refused_cancelled")
        market = self._markets.get(body.market)
        if market is None:
            if len(self._markets) >= self._max_markets:
                return self._count(AddOutcome.TOO_MANY_MARKETS, "refused_too_many_markets")
            market = self._markets[body.market] = _Market()
        entry = _Entry(envelope, offer_id, body.market, owner, body.created_at, body.expires_at)
        refusal = self._make_room(market, entry)
        if refusal is not None:
            if not market.entries:
                self._markets.pop(body.market, None)
            return refusal
        # Evicting the market's last offer dropped the market: attach it again.
        self._markets[body.market] = market
        market.entries[offer_id] = entry
        market.by_owner.setdefault(owner, set()).add(offer_id)
        self._index[offer_id] = entry
        heapq.heappush(self._expiry_heap, (entry.expires_at, offer_id))
        return self._count(AddOutcome.ADDED, "added")

    def cancel(self, envelope: SignedEnvelope, now_ms: int) -> bool:
        """Apply a Cancel; True if it removed an offer (only the offer's owner can).

        Raises:
            TypeError: the body is not a Cancel.
        """
        body = envelope.body
        if not isinstance(body, Cancel):
            raise TypeError(f"OfferBook.cancel takes a Cancel, not {type(body).__name__}")
        if envelope.signer != body.owner:
            self._counts["cancels_not_by_owner"] += 1
            return False
        entry = self._index.get(body.offer_cid)
        if entry is None:
            until_ms = body.created_at + MAX_LIFETIME_MS
            self._remember_cancel(body.offer_cid, body.owner, until_ms, now_ms)
            return False
        if entry.owner != body.owner or entry.market != body.market:
            self._counts["cancels_not_by_owner"] += 1
            return False
        self._remove(entry)
        self._remember_cancel(entry.offer_id, entry.owner, entry.expires_at, now_ms)
        self._counts["cancelled"] += 1
        return True

    def expire(self, now_ms: int) -> list[str]:
        """Drop offers whose `expires_at <= now_ms`; return their IDs, sorted."""
        removed = []
        heap = self._expiry_heap
        while heap and heap[0][0] <= now_ms:
            expires_at, offer_id = heapq.heappop(heap)
            entry = self._index.get(offer_id)
            if entry is not None and entry.expires_at == expires_at:
                self._remove(entry)
                removed.append(offer_id)
        self._counts["expired"] += len(removed)
        tombstone_heap = self._tombstone_heap
        while tombstone_heap and tombstone_heap[0][0] <= now_ms:
            _, offer_id, owner = heapq.heappop(tombstone_heap)
            del self._tombstones[(offer_id, owner)]
        return sorted(removed)

    # --- reading -------------------------------------------------------------------------

    def offers(
        self, market: str, kind: type[ResourceOffer] | type[JobOffer] | None = None
    ) -> list[SignedEnvelope]:
        """Envelopes of `market`'s offers (only of `kind` if given), oldest first, then by ID."""
        state = self._markets.get(market)
        if state is None:
            return []
        entries = [
            entry
            for entry in state.entries.values()
            if kind is None or type(entry.envelope.body) is kind
        ]
        entries.sort(key=lambda entry: (entry.created_at, entry.offer_id))
        return [entry.envelope for entry in entries]

    def get(self, offer_id: str) -> SignedEnvelope | None:
        entry = self._index.get(offer_id)
        return None if entry is None else entry.envelope

    def markets(self) -> list[str]:
        """Markets holding at least one offer, sorted."""
        return sorted(self._markets)

    def is_cancelled(self, offer_id: str, owner: str) -> bool:
        return (offer_id, owner) in self._tombstones

    def __contains__(self, offer_id: object) -> bool:
        return offer_id in self._index

    def __len__(self) -> int:
        return len(self._index)

    def statistics(self) -> OfferBookStatistics:
        resource_offers = sum(
            1 for entry in self._index.values() if type(entry.envelope.body) is ResourceOffer
        )
        return OfferBookStatistics(
            offers=len(self._index),
            resource_offers=resource_offers,
            job_offers=len(self._index) - resource_offers,
            markets=len(self._markets),
            tombstones=len(self._tombstones),
            **self._counts,
        )

    # --- internals -----------------------------------------------------------------------

    def _count(self, outcome: AddOutcome, counter: str) -> AddOutcome:
        self._counts[counter] += 1
        return outcome

    def _make_room(self, market: _Market, newcomer: _Entry) -> AddOutcome | None:
        """Evict per the module's rules so `newcomer` fits; an outcome if it is refused."""
        owned = market.by_owner.get(newcomer.owner, set())
        if len(owned) >= self._max_offers_per_owner:
            candidates = [market.entries[offer_id] for offer_id in owned]
            candidates.append(newcomer)
            outcome, counter = AddOutcome.OWNER_LIMIT, "refused_owner_limit"
        elif len(market.entries) >= self._max_offers_per_market:
            counts = {owner: len(offer_ids) for owner, offer_ids in market.by_owner.items()}
            counts[newcomer.owner] = len(owned) + 1
            most = max(counts.values())
            candidates = [
                market.entries[offer_id]
                for owner, count in counts.items()
                if count == most
                for offer_id in market.by_owner.get(owner, ())
            ]
            if counts[newcomer.owner] == most:
                candidates.append(newcomer)
            outcome, counter = AddOutcome.BOOK_FULL, "refused_full"
        else:
            return None
        victim = min(candidates, key=lambda entry: (entry.expires_at, entry.offer_id))
        if victim is newcomer:
            return self._count(outcome, counter)
        self._remove(victim)
        self._counts["evicted"] += 1
        return None

    def _remove(self, entry: _Entry) -> None:
        del self._index[entry.offer_id]
        market = self._markets[entry.market]
        del market.entries[entry.offer_id]
        owned = market.by_owner[entry.owner]
        owned.discard(entry.offer_id)
        if not owned:
            del market.by_owner[entry.owner]
        if not market.entries:
            del self._markets[entry.market]
        if len(self._expiry_heap) > 2 * len(self._index) + 64:
            self._expiry_heap = [(e.expires_at, e.offer_id) for e in self._index.values()]
            heapq.heapify(self._expiry_heap)

    def _remember_cancel(self, offer_id: str, owner: str, until_ms: int, now_ms: int) -> None:
        key = (offer_id, owner)
        if until_ms <= now_ms or key in self._tombstones:
            return
        if len(self._tombstones) >= self._max_tombstones:
            _, old_offer_id, old_owner = heapq.heappop(self._tombstone_heap)
            del self._tombstones[(old_offer_id, old_owner)]
        self._tombstones[key] = until_ms
        heapq.heappush(self._tombstone_heap, (until_ms, offer_id, owner))
