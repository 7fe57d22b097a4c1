"""Pure market logic (no I/O; time is passed in as `now_ms`).

Offer book, replay guard, re-publishing of our own offers.
"""

from lilypad_p2p.market._offer_book import (
    DEFAULT_MAX_MARKETS,
    DEFAULT_MAX_OFFERS_PER_MARKET,
    DEFAULT_MAX_OFFERS_PER_OWNER,
    DEFAULT_MAX_TOMBSTONES,
    AddOutcome,
    OfferBook,
    OfferBookStatistics,
)
from lilypad_p2p.market._replay import (
    DEFAULT_REPLAY_CAPACITY,
    ReplayGuard,
    ReplayGuardStatistics,
)
from lilypad_p2p.market._republisher import REPUBLISH_INTERVAL_MS, Republisher

__all__ = [
    "DEFAULT_MAX_MARKETS",
    "DEFAULT_MAX_OFFERS_PER_MARKET",
    "DEFAULT_MAX_OFFERS_PER_OWNER",
    "DEFAULT_MAX_TOMBSTONES",
    "DEFAULT_REPLAY_CAPACITY",
    "REPUBLISH_INTERVAL_MS",
    "AddOutcome",
    "OfferBook",
    "OfferBookStatistics",
    "ReplayGuard",
    "ReplayGuardStatistics",
    "Republisher",
]
