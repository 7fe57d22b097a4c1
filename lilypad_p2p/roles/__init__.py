"""Roles a node can take: behaviours composed over net/, market/, exec/ and chain/."""

from lilypad_p2p.roles._client import (
    ClientRole,
    JobSubmission,
    SubmissionError,
    describe,
    result_hash,
)
from lilypad_p2p.roles._provider import (
    DEFAULT_OFFER_LIFETIME_MS,
    Capacity,
    ProviderRole,
    detect_capacity,
    resource_offer,
)
from lilypad_p2p.roles._settlement import ChainMove, DealChain, open_deal_chain
from lilypad_p2p.roles._solver import EPOCH_GRACE_MS, Solver, SolverStatistics
from lilypad_p2p.roles._terms import NoMediators, build_deal, deal_from_wire, deal_to_wire

__all__ = [
    "DEFAULT_OFFER_LIFETIME_MS",
    "EPOCH_GRACE_MS",
    "Capacity",
    "ChainMove",
    "ClientRole",
    "DealChain",
    "JobSubmission",
    "NoMediators",
    "ProviderRole",
    "Solver",
    "SolverStatistics",
    "SubmissionError",
    "build_deal",
    "deal_from_wire",
    "deal_to_wire",
    "describe",
    "detect_capacity",
    "open_deal_chain",
    "resource_offer",
    "result_hash",
]
