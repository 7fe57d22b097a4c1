"""Limits every node applies to every message; changing one is a protocol change."""

# Largest message accepted, checked before any parsing (GossipSub's default max is 1 MiB).
MAX_MESSAGE_BYTES = 65536
# How far a timestamp may lie in the receiver's future before the message is refused.
MAX_CLOCK_SKEW_MS = 30_000
# An envelope older than this (by `published_at`) is refused: replay guards only need to
# remember envelope IDs this long (plus the skew), so their memory stays bounded. Long-lived
# offers are re-published (re-signed) within it, and every round is gossiped to every node:
# ten minutes keeps that idle traffic small (at two minutes it was most of an idle network's
# CPU), while the guards hold a few thousand IDs at real rates.
ENVELOPE_MAX_AGE_MS = 600_000
# Longest life (expires_at - created_at) of any body: bounds how long cancellations and other
# per-offer state must be remembered.
MAX_LIFETIME_MS = 24 * 3600 * 1000
# Deepest nesting of arrays/maps the codec accepts; our schemas need 4.
MAX_NESTING_DEPTH = 16
# Chains a provider accepts in one offer, and the largest chain ID (EIP-2294's bound, which
# keeps every ID a positive int64 for the JSON-RPC and signing libraries).
MAX_CHAINS = 16
MAX_CHAIN_ID = (1 << 63) - 36
