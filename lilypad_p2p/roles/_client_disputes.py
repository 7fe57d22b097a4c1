"""The job creator's side of mediation, plugged into `ClientRole`.

`ClientRole` asks this object three things: which terms its deals carry (consortium size,
mediation fee), whether a resource offer's collateral covers its spot-check rate
(`market.required_collateral`), and whether a verified result is spot-checked. A deal goes to
`disputed` when its outputs fail verification, when it is spot-checked, or when the user runs
`lilypad-p2p dispute <key>`; `step` then drives it. A spot check is first asked off chain
(`roles/_spot_check.py`): if k members agree the deal is accepted as usual (its fee shares paid
later in a batch by `fees`); otherwise, and for every other dispute: `roles.mediate` (record
the result, dispute, gather k verdicts from the consortium over `/lilypad/mediation/3`,
resolve); each mediator is streamed the inputs this client spooled at submit, re-sealed to
it. Without a quorum it tries again until the mediation window closes on chain, then claims
the timeout (the price split between the parties, collateral and fee back).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from lilypad_p2p.chain import DealStatus
from lilypad_p2p.deal_detail import required
from lilypad_p2p.errors import LilypadError
from lilypad_p2p.exec._tarball import cid_of_digest
from lilypad_p2p.identity import Identity
from lilypad_p2p.logs import event
from lilypad_p2p.market import (
    DEFAULT_CONSORTIUM_SIZE,
    PPM,
    EquivocationWatch,
    Event,
    Phase,
    is_spot_checked,
    threshold_is_safe,
)
from lilypad_p2p.roles._dispute import (
    MEDIATOR_ANSWER_TIMEOUT_S,
    DisputeCase,
    DisputeError,
    MediatorContact,
    mediate,
)
from lilypad_p2p.roles._settlement import DealChains
from lilypad_p2p.roles._spot_check import CheckFees, fee_shares, private_check
from lilypad_p2p.roles._terms import MEDIATION_FEE_WEI
from lilypad_p2p.roles._transfer import SpooledInputs, inputs_spool, spool_context
from lilypad_p2p.store import ClientDeal

log = logging.getLogger("lilypad_p2p.client")

# Pause before asking the consortium again when no quorum formed.
NO_QUORUM_RETRY_S = 2.0


@dataclass(frozen=True, slots=True)
class MediationSettings:
    """A client's mediation choices (NodeConfig: check_rate, mediation_fee_wei, ...)."""

    check_rate_ppm: int = 0
    mediation_fee_wei: int = MEDIATION_FEE_WEI
    consortium_size: int = DEFAULT_CONSORTIUM_SIZE
    threshold: int = 0  # 0: default_quorum of the consortium actually chosen
    answer_timeout_s: float = MEDIATOR_ANSWER_TIMEOUT_S

    def __post_init__(self) -> None:
        if not 0 <= self.check_rate_ppm <= PPM:
            raise ValueError("check_rate_ppm must be in 0..1_000_000")
        if self.mediation_fee_wei < 0 or not 1 <= self.consortium_size <= 32:
            raise ValueError("mediation fee must be >= 0 and the consortium 1..32 mediators")
        if self.threshold and not threshold_is_safe(self.threshold, self.consortium_size):
            raise ValueError("the threshold must be a strict majority of the consortium")


class ClientDisputes:
    def __init__(
        self,
        identity: Identity,
        chains: DealChains,
        contact: Callable[[str], MediatorContact | None],
        settings: MediationSettings = MediationSettings(),
    ) -> None:
        self._identity = identity
        self._chains = chains
        self._contact = contact
        self.settings = settings
        self._watch = EquivocationWatch()
        # Spot-checked deals whose private check did not agree: disputed on chain now.
        self._escalated: set[str] = set()
        self.fees = CheckFees(chains)

    def deal_terms(self) -> dict[str, Any]:
        """Keyword arguments of `build_deal` this client's deals carry."""
        return {"consortium_size": self.settings.consortium_size,
                "mediation_fee_wei": self.settings.mediation_fee_wei,
                "threshold": self.settings.threshold or None}

    def spot_check(self) -> bool:
        return is_spot_checked(self.settings.check_rate_ppm, secrets.randbelow(PPM))

    async def step(
        self, stored: ClientDeal, results_dir: Path
    ) -> tuple[Event, dict[str, Any]] | None:
        """One attempt at mediating a disputed deal: the event that ends it, or None (retry).
        A deal whose output never reached us asks the mediators for theirs (into
        `results_dir`), kept if they uphold the recorded result."""
        detail = stored.detail
        chain = self._chains.require(stored.chain_id)
        deal = required(detail.deal, "deal")
        result = required(detail.result_hash, "result hash")
        inputs = SpooledInputs(inputs_spool(detail.inputs_spool),
                               self._identity.sealing_private_key(),
                               spool_context(stored.record.key))
        case = DisputeCase(deal, detail.module, inputs, result,
                           required(detail.provider_commitment, "provider's commitment"),
                           detail.job_offer, required(detail.inputs_nonce, "inputs nonce"),
                           output=(results_dir / f"{stored.record.key}.tar"
                                   if detail.result_path is None else None))
        if detail.spot_check and stored.record.key not in self._escalated:
            # Off chain first (roles/_spot_check.py): only a disagreement is disputed.
            quorum = await private_check(self._chains, stored.chain_id, case, self._contact,
                                         answer_timeout_s=self.settings.answer_timeout_s,
                                         watch=self._watch)
            if quorum is not None:
                return Event.RESULT_VERIFIED, {
                    "acceptance_signature": chain.sign_acceptance(deal, result),
                    "check_outcome": quorum.outcome.name,
                    "check_fees": fee_shares(deal.mediation_fee, quorum.signers),
                }
            self._escalated.add(stored.record.key)
        try:
            resolution = await mediate(chain, case, self._contact,
                                       answer_timeout_s=self.settings.answer_timeout_s,
                                       watch=self._watch)
        except DisputeError:
            status = await chain.status(deal)
            if status is DealStatus.SETTLED:
                return Event.SETTLED, {}
            if status is DealStatus.RESOLVED:
                return Event.RESOLVED, {"resolved_by_us": False}
            return Event.TIMEOUT_CLAIMED, {"chain_status": status.name}
        if resolution is not None:
            delivered = ({} if case.output is None or not case.output.exists() else {
                "result_path": str(case.output), "result_cid": cid_of_digest(result)})
            return Event.RESOLVED, {
                **delivered,
                "outcome": resolution.outcome.name,
                "verdict_hash": resolution.result_hash,
                "verdict_signers": resolution.signers,
                "dissent": tuple(v.mediator for v in resolution.dissent),
                "silent_mediators": resolution.missing,
                "resolved_by_us": resolution.resolved_by_us,
            }
        state = await chain.client.deal_state(chain.deal_id(deal))
        if state.status is DealStatus.RESOLVED:
            return Event.RESOLVED, {"resolved_by_us": False}
        if await chain.now_s() > state.since + deal.mediation_window:
            move = await chain.claim_timeout(deal)
            event(log, "dispute.timed_out", logging.WARNING, key=stored.record.key)
            return Event.TIMEOUT_CLAIMED, {"chain_status": move.status.name}
        await trio.sleep(NO_QUORUM_RETRY_S)
        return None


def refuse_user_dispute(stored: ClientDeal, acceptance_travelling: bool) -> None:
    """Raise LilypadError unless the user may dispute `stored` now: a verified result whose
    signed Acceptance the provider does not hold and is not being sent (once there it is final:
    the contract settles on it whatever a dispute says)."""
    if stored.record.phase is not Phase.ACCEPTED:
        raise LilypadError(f"deal is {stored.record.phase}: only a deal with a verified, "
                           "not yet settled result can be disputed")
    if stored.detail.acceptance_delivered:
        raise LilypadError("the provider already holds this deal's signed Acceptance, "
                           "which is final: it settles the deal whatever a dispute says")
    if acceptance_travelling:
        raise LilypadError("the deal's signed Acceptance is on its way to the provider, "
                           "final once there: try again in a moment")
