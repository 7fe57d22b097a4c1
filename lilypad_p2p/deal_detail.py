"""What each side keeps of a deal to resume it: frozen, typed records beside its `DealRecord`
(a mediator's, its verdict, in a file of its own).

A client's deal gathers its values phase by phase (the job offer when posted, the co-signed deal
when matched, the result and acceptance when checked...), so most of `ClientDetail` is None
until its phase sets it; a provider's deal starts co-signed, so `ProviderDetail` starts with the
deal. The roles replace a record with `dataclasses.replace` and the store writes it whole;
`store.py` holds the one codec between these records and their bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from lilypad_p2p import wire
from lilypad_p2p.chain import Deal
from lilypad_p2p.errors import LilypadError

T = TypeVar("T")


class IncompleteDeal(LilypadError):
    """A stored deal lacks a value its phase should have: the database is corrupt."""


def required(value: T | None, name: str) -> T:
    """`value`, which the deal's phase has set.

    Raises:
        IncompleteDeal: it is not set.
    """
    if value is None:
        raise IncompleteDeal(f"the deal has no {name} in its phase: the database is corrupt")
    return value


@dataclass(frozen=True, slots=True)
class ClientDetail:
    """A client's deal: its job offer and what each later phase added."""

    # offered: the signed job offer (an encoded envelope), its module and sealed inputs
    job_offer: bytes
    module: str  # the module's ID
    submitted_ms: int
    module_name: str | None = None
    inputs_spool: str | None = None
    inputs_nonce: bytes | None = None  # opens the job offer's inputs_commitment
    salt: bytes | None = None  # the deal's Job salt when the submission named one
    refused: dict[str, int] = field(default_factory=dict)  # resource offer CID -> sits out until
    refusal: str | None = None  # why the last match failed
    # matched
    resource_offer: str | None = None
    deal: Deal | None = None
    job_creator_signature: bytes | None = None
    matched_ms: int | None = None
    # agreed, open
    provider_record: bytes | None = None  # the provider's encoded NodeRecord when it agreed
    agreed_ms: int | None = None
    deal_id: bytes | None = None
    opened_ms: int | None = None
    last_refusal: str | None = None  # why the provider last refused the inputs
    # a result came back
    result_hash: bytes | None = None
    provider_commitment: bytes | None = None
    acceptance_signature: bytes | None = None
    result_path: str | None = None
    result_ms: int | None = None
    result_cid: str | None = None
    failure: str | None = None  # a failure result's class (roles/_failure.py)
    failure_exit_code: int | None = None
    spot_check: bool = False
    acceptance_delivered: bool = False
    disputed_by_user: bool = False
    # a spot check that agreed off chain, and the fees it owes
    check_outcome: str | None = None
    check_fees: dict[str, int] = field(default_factory=dict)  # mediator -> wei
    check_fees_paid: bool = False
    # mediation's ruling
    outcome: str | None = None
    verdict_hash: bytes | None = None
    verdict_signers: tuple[str, ...] = ()
    dissent: tuple[str, ...] = ()
    silent_mediators: tuple[str, ...] = ()
    resolved_by_us: bool | None = None
    # the end
    settled_ms: int | None = None
    settled_by_us: bool | None = None
    chain_status: str | None = None  # the deal's status on chain when it was found ended
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderDetail:
    """A provider's deal: the deal it countersigned and what each later phase added."""

    deal: Deal
    job_creator_signature: bytes
    provider_signature: bytes
    module: str
    spec: wire.ResourceSpec
    job_offer_cid: str
    job_offer: bytes | None = None  # the signed job offer, for mediators (None: an older deal)
    # running
    inputs_spool: str | None = None
    inputs_nonce: bytes | None = None  # set once the inputs open the job offer's commitment
    output_recipient: bytes | None = None  # the job creator's sealing key for the outputs
    error: str | None = None  # why the last run did not finish
    # result committed
    result_hash: bytes | None = None
    commitment_signature: bytes | None = None
    result_cid: str | None = None
    failure: str | None = None
    acceptance_signature: bytes | None = None
    submitted_on_chain: bool | None = None
    # the end
    settled_ms: int | None = None
    batch_size: int | None = None
    outcome: str | None = None
    chain_status: str | None = None


DealDetail = ClientDetail | ProviderDetail


@dataclass(frozen=True, slots=True)
class MediatorDetail:
    """A mediator's signed verdict on a deal, kept (in a file of its own) so that a restarted
    mediator answers with the same verdict and still collects its fee."""

    verdict: wire.VerdictNotice
    deal: Deal
    chain_id: int | None  # None: saved before chains were recorded (the node's default chain)
    fee_settled: bool = False
