"""Roles a node can take: behaviours composed over net/, market/, exec/ and chain/.

Client, provider, solver, mediator, chain bridge and request checker, each given what it needs
as arguments; the node (node*.py) builds and starts them. Blocking work (the chain, files)
goes through `lilypad_p2p.blocking.run_blocking`, which tests run inline on an autojumping clock.
May import from lilypad_p2p anything but: cli*, node*, observe, testing.
"""

from lilypad_p2p.roles._bridge import BridgeRole, BridgeStatistics, open_bridge
from lilypad_p2p.roles._client import ClientRole
from lilypad_p2p.roles._client_control import describe
from lilypad_p2p.roles._client_disputes import ClientDisputes, MediationSettings
from lilypad_p2p.roles._client_submission import JobSubmission, SubmissionError
from lilypad_p2p.roles._dispute import (
    MEDIATOR_ANSWER_TIMEOUT_S,
    DisputeCase,
    DisputeError,
    MediatorContact,
    MediatorDeclined,
    Resolution,
    gather_verdicts,
    mediate,
    open_dispute,
    resolve,
)
from lilypad_p2p.roles._mediator import MediationRefused, MediatorFault, MediatorRole
from lilypad_p2p.roles._provider import ProviderRole
from lilypad_p2p.roles._provider_disputes import ProviderDisputes
from lilypad_p2p.roles._request_checker import CheckAction, RequestChecker, check_action
from lilypad_p2p.roles._resource_offer import (
    DEFAULT_COLLATERAL_WEI,
    DEFAULT_OFFER_LIFETIME_MS,
    DEFAULT_PRICE_PER_JOB_WEI,
    Capacity,
    detect_capacity,
    resource_offer,
)
from lilypad_p2p.roles._settlement import (
    ChainMove,
    DealChain,
    DealChains,
    UnknownChain,
    open_deal_chains,
)
from lilypad_p2p.roles._solver import EPOCH_GRACE_MS, Solver, SolverStatistics
from lilypad_p2p.roles._terms import NoMediators, build_deal, deal_from_wire
from lilypad_p2p.roles._transfer import result_hash
from lilypad_p2p.wire import deal_to_wire

__all__ = [
    "DEFAULT_COLLATERAL_WEI",
    "DEFAULT_OFFER_LIFETIME_MS",
    "DEFAULT_PRICE_PER_JOB_WEI",
    "EPOCH_GRACE_MS",
    "MEDIATOR_ANSWER_TIMEOUT_S",
    "BridgeRole",
    "BridgeStatistics",
    "Capacity",
    "ChainMove",
    "CheckAction",
    "ClientDisputes",
    "ClientRole",
    "DealChain",
    "DealChains",
    "DisputeCase",
    "DisputeError",
    "JobSubmission",
    "MediationRefused",
    "MediationSettings",
    "MediatorContact",
    "MediatorDeclined",
    "MediatorFault",
    "MediatorRole",
    "NoMediators",
    "ProviderDisputes",
    "ProviderRole",
    "RequestChecker",
    "Resolution",
    "Solver",
    "SolverStatistics",
    "SubmissionError",
    "UnknownChain",
    "build_deal",
    "check_action",
    "deal_from_wire",
    "deal_to_wire",
    "describe",
    "detect_capacity",
    "gather_verdicts",
    "mediate",
    "open_bridge",
    "open_deal_chains",
    "open_dispute",
    "resolve",
    "resource_offer",
    "result_hash",
]
