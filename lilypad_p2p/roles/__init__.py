"""Roles a node can take: behaviours composed over net/, market/, exec/ and chain/."""

from lilypad_p2p.roles._provider import (
    DEFAULT_OFFER_LIFETIME_MS,
    Capacity,
    detect_capacity,
    resource_offer,
)
from lilypad_p2p.roles._solver import EPOCH_GRACE_MS, Solver, SolverStatistics

__all__ = [
    "DEFAULT_OFFER_LIFETIME_MS",
    "EPOCH_GRACE_MS",
    "Capacity",
    "Solver",
    "SolverStatistics",
    "detect_capacity",
    "resource_offer",
]
