"""Pure market logic (no I/O; time is passed in as `now_ms`).

Offer book, replay guard, re-publishing of our own offers, batch matching.
"""

from lilypad_p2p.market._matching import (
    DEFAULT_EXECUTION_ESTIMATE_MS,
    DEFAULT_MATCH_HOLD_MS,
    DEFAULT_MATCH_POLICY,
    DEFAULT_MIN_COMMON_MEDIATORS,
    EPOCH_MS,
    PROPOSAL_LIFETIME_MS,
    Held,
    MatchHolds,
    Matching,
    MatchPolicy,
    common_mediators,
    epoch_end_ms,
    epoch_of,
    first_fit,
    is_open,
    match,
    mismatch,
    proposals_for,
)
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
    "DEFAULT_EXECUTION_ESTIMATE_MS",
    "DEFAULT_MATCH_HOLD_MS",
    "DEFAULT_MATCH_POLICY",
    "DEFAULT_MAX_MARKETS",
    "DEFAULT_MAX_OFFERS_PER_MARKET",
    "DEFAULT_MAX_OFFERS_PER_OWNER",
    "DEFAULT_MAX_TOMBSTONES",
    "DEFAULT_MIN_COMMON_MEDIATORS",
    "DEFAULT_REPLAY_CAPACITY",
    "EPOCH_MS",
    "PROPOSAL_LIFETIME_MS",
    "REPUBLISH_INTERVAL_MS",
    "AddOutcome",
    "Held",
    "MatchHolds",
    "MatchPolicy",
    "Matching",
    "OfferBook",
    "OfferBookStatistics",
    "ReplayGuard",
    "ReplayGuardStatistics",
    "Republisher",
    "common_mediators",
    "epoch_end_ms",
    "epoch_of",
    "first_fit",
    "is_open",
    "match",
    "mismatch",
    "proposals_for",
]
