"""Deal terms: build the EIP-712 `Deal` from a matched pair of offers, and check one.

Pure: the client builds a deal with `build_deal`, the provider re-derives every term it can
from the two offers with `deal_mismatch` before it countersigns, so a deal can only say what
both offers said. `deal_from_wire` reads a `chain.Deal` from the stream messages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from eth_utils import keccak

from lilypad_p2p import wire
from lilypad_p2p.chain import Deal, default_threshold
from lilypad_p2p.exec import BUILTIN_IDS
from lilypad_p2p.market import (
    DEFAULT_CONSORTIUM_SIZE,
    common_mediators,
    consortium_seed,
    mismatch,
    select_consortium,
    threshold_is_safe,
)

# On-chain windows a deal carries (seconds): how long the job creator has to accept a result
# recorded on chain before the provider may claim payment, and how long mediation may take.
ACCEPTANCE_WINDOW_S = 120
# The acceptance windows a provider agrees to (the client proposes one within these).
MIN_ACCEPTANCE_WINDOW_S = 2
MAX_ACCEPTANCE_WINDOW_S = 7 * 24 * 3600
MEDIATION_WINDOW_S = 600
# The fee the job creator reserves for mediators per deal unless configured (refunded when the
# deal settles without dispute; split among the verdict's signers otherwise).
MEDIATION_FEE_WEI = 0
# A deal must leave the module's whole maximum run time before its result deadline, plus time
# to open the deal on chain and stream the inputs before the run, and to answer after it. With
# less, an honest run could be cut short by the deal's deadline rather than by the module's
# own limit: that is no failure result but a missed deadline, and it costs the provider its
# collateral - a client could farm collateral with slow jobs and short deadlines.
DEAL_START_ALLOWANCE_S = 30
RESULT_DELIVERY_MARGIN_S = 2


class NoMediators(ValueError):
    """Neither offer names a mediator, and the contract needs at least one (see DESIGN §6)."""


def job_spec_hash(job: wire.JobOffer) -> bytes:
    """Binds the deal to the exact job offer (its canonical bytes)."""
    return keccak(job.canonical_bytes)


def proposed_job(proposal: wire.DealProposal, proposer: str) -> wire.JobOffer | str:
    """The job offer a deal proposal from peer `proposer` carries, or why it is refused: it
    must be a job offer signed by the proposer, on the proposal's chain.

    Raises:
        wire.WireError: the envelope does not decode or its signature does not verify.
    """
    envelope = wire.SignedEnvelope.from_wire(wire.decode(proposal.job_offer))
    wire.verify_signature(envelope)
    job = envelope.body
    if not isinstance(job, wire.JobOffer):
        return "job_offer is not a JobOffer"
    if wire.address_from_peer_id_text(proposer) != job.job_creator:
        return "only the job creator may propose its deal"
    if job.chain_id != proposal.chain_id:
        return "the deal's chain is not its job offer's"
    return job


def deal_job_offer(deal: Deal, envelope: bytes) -> wire.JobOffer:
    """The job offer `deal` was made for, from its signed envelope (its hash binds it).

    Raises:
        wire.MalformedMessage: not a job offer, or not the deal's.
    """
    job = wire.SignedEnvelope.from_wire(wire.decode(envelope)).body
    if not isinstance(job, wire.JobOffer) or job_spec_hash(job) != deal.job_spec_hash:
        raise wire.MalformedMessage("job_offer is not the deal's: its hash is not the deal's "
                                    "jobSpecHash")
    return job


BUILTIN_NAMES = {module_id: name for name, module_id in BUILTIN_IDS.items()}


def module_hash(module: str) -> bytes:
    """The deal's on-chain module hash: keccak of the module ID, except for a shipped module,
    whose hash is keccak of its name, as contracts name it (`requestJob("hash", ...)`) and
    every node ships the same definitions."""
    return keccak(text=BUILTIN_NAMES.get(module, module))


def choose_mediators(
    job: wire.JobOffer, resource: wire.ResourceOffer, size: int = DEFAULT_CONSORTIUM_SIZE
) -> tuple[str, ...]:
    """The deal's consortium: `size` of the mediators both sides trust (one side's list if the
    other names none), chosen by `market.select_consortium` from a seed of both offers' CIDs,
    so the provider (and anyone holding both offers) recomputes the same set.

    Raises:
        NoMediators: the offers leave no mediator (the contract refuses an empty consortium).
    """
    candidates = common_mediators(job, resource)
    if not candidates:
        raise NoMediators(
            "no mediator both sides trust: set `mediators` in config.toml (at least one address)"
        )
    return select_consortium(candidates, consortium_seed(job.cid, resource.cid), size)


def build_deal(
    job: wire.JobOffer,
    resource: wire.ResourceOffer,
    *,
    salt: bytes,
    acceptance_window_s: int = ACCEPTANCE_WINDOW_S,
    consortium_size: int = DEFAULT_CONSORTIUM_SIZE,
    threshold: int | None = None,
    mediation_fee_wei: int = MEDIATION_FEE_WEI,
) -> Deal:
    """The deal the job creator proposes for `job` on `resource` (32 random bytes of `salt`).

    `threshold` defaults to `default_threshold` of the consortium chosen; the mediation fee is
    the job creator's to set (it is locked from its deposit; the provider never pays it).
    """
    mediators = choose_mediators(job, resource, consortium_size)
    return Deal(
        job_creator=job.job_creator,
        provider=resource.provider,
        payment=resource.price_per_job_wei,
        collateral=resource.collateral_wei,
        mediation_fee=mediation_fee_wei,
        mediators=mediators,
        # Capped: fewer mediators may be trusted by both than asked for (k stays a majority).
        threshold=(default_threshold(len(mediators)) if threshold is None
                   else min(threshold, len(mediators))),
        result_deadline=job.deadline // 1000,
        acceptance_window=acceptance_window_s,
        mediation_window=MEDIATION_WINDOW_S,
        job_spec_hash=job_spec_hash(job),
        module_hash=module_hash(job.module),
        salt=salt,
    )


def required_deal_time_s(max_run_time_s: int) -> int:
    """The least time a deal for a module of this maximum run time must leave before its result
    deadline when the provider signs it."""
    return max_run_time_s + DEAL_START_ALLOWANCE_S + RESULT_DELIVERY_MARGIN_S


def deal_mismatch(
    deal: Deal, job: wire.JobOffer, resource: wire.ResourceOffer, now_ms: int,
    max_run_time_s: int,
) -> str | None:
    """Why the provider must refuse `deal` for this pair of offers, or None if it matches.

    `max_run_time_s` is the job's module's maximum run time."""
    reason = mismatch(job, resource, now_ms)
    if reason is not None and reason != "job offer not open":
        # The job offer may have expired since the match; the deal's deadline is what counts.
        return reason
    if not MIN_ACCEPTANCE_WINDOW_S <= deal.acceptance_window <= MAX_ACCEPTANCE_WINDOW_S:
        return "acceptance window out of bounds"
    if not threshold_is_safe(deal.threshold, len(deal.mediators)):
        return "mediator threshold is not a strict majority"
    try:
        expected = build_deal(job, resource, salt=deal.salt,
                              acceptance_window_s=deal.acceptance_window,
                              consortium_size=len(deal.mediators), threshold=deal.threshold,
                              mediation_fee_wei=deal.mediation_fee)
    except NoMediators as exc:
        return str(exc)
    if deal != expected:
        differing = [name for name in Deal.__slots__ if getattr(deal, name) !=
                     getattr(expected, name)]
        return f"deal terms differ from the offers: {', '.join(differing)}"
    left_s = deal.result_deadline - now_ms // 1000
    needed_s = required_deal_time_s(max_run_time_s)
    if left_s < needed_s:
        return (f"result deadline too close: the module may run {max_run_time_s} s, so a deal "
                f"must leave {needed_s} s, this one leaves {left_s} s; post the job with a "
                "longer deadline")
    return None


def deal_from_wire(values: Mapping[str, object]) -> Deal:
    """The `Deal` a deal message carries (the wire codec is `wire.deal_from_wire`).

    Raises:
        wire.MalformedMessage: a value has the wrong type or is out of range.
    """
    return wire.deal_from_wire(values, Deal)


def spec_fits(need: wire.ResourceSpec, free: Sequence[int]) -> bool:
    """Whether `need` fits in `free` = (milli_cpu, ram_mb, disk_mb, gpu_count)."""
    wanted = (need.milli_cpu, need.ram_mb, need.disk_mb, need.gpu_count)
    return all(w <= f for w, f in zip(wanted, free, strict=True))
