"""What a job's checked result leads to for the client: accepted (the Acceptance signed), or
disputed (a spot check, or outputs that miss the committed hash), or rejected where no
mediation is set up. The result file is kept for a chain bridge's request, and a failure
result's report beside it (roles/_failure.py)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import trio

from lilypad_p2p import wire
from lilypad_p2p.chain import Deal
from lilypad_p2p.deal_detail import required
from lilypad_p2p.exec._tarball import cid_of_digest
from lilypad_p2p.logs import event
from lilypad_p2p.market import Event
from lilypad_p2p.net import RESULT_STREAM, DealTransport
from lilypad_p2p.roles._client_disputes import ClientDisputes
from lilypad_p2p.roles._failure import keep_failure
from lilypad_p2p.roles._settlement import DealChain
from lilypad_p2p.roles._transfer import MAX_STORED_RESULT_BYTES, Delivery
from lilypad_p2p.store import ClientDeal, DealStore

log = logging.getLogger("lilypad_p2p.client")

UNDELIVERED = "the delivery does not match the committed result hash"
# Bound on handing one signed Acceptance to the provider.
ACCEPTANCE_REQUEST_TIMEOUT_S = 15.0


def result_outcome(
    stored: ClientDeal, deal: Deal, answer: wire.JobResultMessage, delivery: Delivery | None,
    *, chain: DealChain, store: DealStore, results_dir: Path, disputes: ClientDisputes | None,
    now_ms: int,
) -> tuple[Event, dict[str, Any]]:
    """The event and the detail to save. `delivery` is what matched the commitment (checked
    as it arrived), if anything: without it the provider signed a hash its delivery does not
    have, evidence for mediation."""
    committed = {"result_hash": answer.result_hash,
                 "provider_commitment": answer.provider_signature}
    if delivery is None:
        return (Event.DISPUTE if disputes else Event.RESULT_INVALID), {
            **committed, "error": UNDELIVERED}
    path = delivery.path
    if stored.detail.salt is not None and path.stat().st_size <= MAX_STORED_RESULT_BYTES:
        store.put_result_file(stored.record.key, path)  # a chain bridge's request
    shown: dict[str, Any] = {"result_cid": cid_of_digest(answer.result_hash)}
    if delivery.failure is not None:  # the provider's signed report of the job's failure
        path, shown = keep_failure(results_dir, stored.record.key, delivery.failure, path)
        event(log, "job.failed_in_job", key=stored.record.key, **shown)
    kept = {**committed, "result_path": str(path), "result_ms": now_ms, **shown}
    if disputes is not None and disputes.spot_check():
        return Event.DISPUTE, {**kept, "spot_check": True}
    return Event.RESULT_VERIFIED, {
        **kept, "acceptance_signature": chain.sign_acceptance(deal, answer.result_hash)}


async def hand_acceptance(transport: DealTransport, chain: DealChain, deal: Deal,
                          stored: ClientDeal, provider: wire.NodeRecord) -> bool:
    """Hand the deal's signed Acceptance to its provider over /lilypad/result/1; whether the
    provider acknowledged it (then it holds what settles the deal)."""
    notice = wire.AcceptanceNotice(
        chain_id=chain.chain_id, deal_id=chain.deal_id(deal),
        result_hash=required(stored.detail.result_hash, "result hash"),
        job_creator_signature=required(stored.detail.acceptance_signature, "acceptance"))
    with trio.fail_after(ACCEPTANCE_REQUEST_TIMEOUT_S):
        answer = await transport.request(provider.peer_id, RESULT_STREAM, notice,
                                         addrs=provider.listen_addrs)
    return isinstance(answer, wire.AcceptanceAck)
