"""Roles a node can take: behaviours composed over net/, market/, exec/ and chain/."""

from lilypad_p2p.roles._provider import (
    DEFAULT_OFFER_LIFETIME_MS,
    Capacity,
    detect_capacity,
    resource_offer,
)

__all__ = ["DEFAULT_OFFER_LIFETIME_MS", "Capacity", "detect_capacity", "resource_offer"]
