"""The provider role: its deals (what it offers: roles/_resource_offer.py).

`ProviderRole` answers the three deal protocols: it signs deals that match its own offer
while it has free capacity and deposit (keeping its signature), takes the inputs, then opens
the deal on chain itself (`openDeal`), so that no job creator can lock our collateral for a job
whose inputs it withholds; runs the job, returns the signed result commitment with the
outputs sealed to the job creator, takes the acceptance, and settles accepted deals in
batches. If the job creator goes silent it records the result on chain and later claims
payment (see `market/_deal.py` for the phases and timeouts).

A provider may serve several settlement chains (`DealChains`): its offers list them, each deal
is checked, signed and settled on the chain its job offer names, and a deal for a chain it
does not serve is refused.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import trio

from lilypad_p2p import wire
from lilypad_p2p.blocking import run_blocking
from lilypad_p2p.chain import (
    ChainError,
    DeadlineError,
    Deal,
    DealStatus,
    InsufficientFunds,
    InvalidDealTerms,
    SettlementItem,
)
from lilypad_p2p.config import DEFAULT_MAX_JOB_BYTES
from lilypad_p2p.deal_detail import ProviderDetail, required
from lilypad_p2p.errors import LilypadError, PeerMisbehaved
from lilypad_p2p.exec import (
    MAX_RUN_TIME_S,
    ExecError,
    Executor,
    JobFailed,
    JobSpec,
    Module,
    ModuleCatalog,
    UnknownModule,
)
from lilypad_p2p.identity import Identity
from lilypad_p2p.logs import event
from lilypad_p2p.market import (
    CLAIM_MARGIN_MS,
    DEFAULT_TIMEOUTS,
    Event,
    OfferBook,
    Phase,
    Timeouts,
    advance,
    due_timeout,
    new_provider_deal,
)
from lilypad_p2p.net import (
    DEAL_STREAM,
    JOB_STREAM,
    RESULT_STREAM,
    BodyGate,
    DealTransport,
    PeerAction,
    Reply,
)
from lilypad_p2p.roles._executor_link import connect_executor
from lilypad_p2p.roles._failure import classify, failure_report, write_report
from lilypad_p2p.roles._module_gate import ModuleGate
from lilypad_p2p.roles._provider_disputes import ProviderDisputes
from lilypad_p2p.roles._provider_promises import has_room, promised_collateral
from lilypad_p2p.roles._settlement import DealChain, DealChains, UnknownChain
from lilypad_p2p.roles._terms import (
    RESULT_DELIVERY_MARGIN_S,
    deal_from_wire,
    deal_mismatch,
    proposed_job,
)
from lilypad_p2p.roles._transfer import (
    JobTooLarge,
    discard,
    inputs_context,
    inputs_spool,
    receive_inputs,
    refuse_uncommitted,
    result_reply,
    tamper_output,
)
from lilypad_p2p.store import DealStore, ProviderDeal

log = logging.getLogger("lilypad_p2p.provider")

# --- deals: accept up to capacity, execute, return results, get paid ----------------------

# How often the provider's driver looks at its deals (acceptance timeouts, batches, claims):
# each is seconds to minutes long; with none open it waits for one (at most the idle tick).
PROVIDER_TICK_S, PROVIDER_IDLE_TICK_S = 1.0, 10.0
# At most this many accepted deals go in one settleBatch transaction.
MAX_SETTLE_BATCH = 50


class ProviderRole:
    """Serves the deal protocols as a provider (module docstring of roles/_client.py for the
    client's half). Every handler persists before it answers, and answers a repeated request
    from the store, so a client retrying after either side crashed gets the same answer."""

    def __init__(
        self,
        identity: Identity,
        *,
        store: DealStore,
        chains: DealChains,
        book: OfferBook,
        executor_factory: Callable[[], Awaitable[Executor]],
        clock_ms: Callable[[], int],
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        cheat_wrong_output: bool = False,
        cheat_false_failure: bool = False,
        disputes: ProviderDisputes | None = None,
        availability: Callable[[], str | None] = lambda: None,
        modules: ModuleCatalog | None = None,
        transport: DealTransport | None = None,
        spool: Path | None = None,
        max_job_bytes: int = DEFAULT_MAX_JOB_BYTES,
    ) -> None:
        # A job's inputs and outputs rest in `spool` (roles/_transfer.py).
        self._spool = spool or Path(tempfile.mkdtemp(prefix="lilypad-provider-spool-"))
        self._max_job_bytes = max_job_bytes
        # Why this node cannot run a job now (Docker or the chain unreachable, the disk full;
        # node_health.py), or None: deals are refused meanwhile.
        self._availability = availability
        # Mediation: a deal found disputed on chain is defended (verdicts gathered
        # and resolved by us too), so a job creator cannot let the mediation window lapse.
        self._disputes = disputes
        self._identity = identity
        # Test fault (config `cheat_wrong_output`): commit to an output the job did not
        # produce, consistently (hash and sealed outputs agree), so only mediation catches it.
        self._cheat_wrong_output = cheat_wrong_output
        # Test fault (config `cheat_false_failure`): claim every job exited 1 without running
        # it, so only mediation catches it.
        self._cheat_false_failure = cheat_false_failure
        self._store = store
        self._chains = chains
        self._book = book
        self._executor_factory = executor_factory
        self._executor: Executor | None = None
        self._clock_ms = clock_ms
        self._timeouts = timeouts
        self._runs: dict[str, trio.Event] = {}
        # Agreed deals whose inputs are arriving, or that we are opening on chain.
        self._opening: set[str] = set()
        self._deal_added = trio.Event()
        self._lock = trio.Lock()  # serialises capacity checks against new agreements
        self._transport = transport
        # Definitions a job's module needs are fetched from its job creator.
        self._modules = ModuleGate(modules or ModuleCatalog(), transport, self._connect_executor)

    def install(self) -> None:
        """Serve the deal protocols on our transport."""
        assert self._transport is not None, "a provider serves deals over a transport"
        self._transport.serve(DEAL_STREAM, self.on_deal_proposal)
        self._transport.serve_transfer(JOB_STREAM, self.on_job_request)
        self._transport.serve(RESULT_STREAM, self.on_acceptance)

    def _blame(self, peer_id: str, exc: PeerMisbehaved) -> None:
        if self._transport is not None:
            self._transport.report(peer_id, PeerAction.LOW_TOLERANCE, str(exc))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self._connect_executor()
        task_status.started()
        while True:
            busy = True
            try:
                busy = await self._tick()
            except (ChainError, LilypadError) as exc:
                event(log, "provider.tick_failed", logging.WARNING, error=repr(exc))
            with trio.move_on_after(PROVIDER_TICK_S if busy else PROVIDER_IDLE_TICK_S):
                await self._deal_added.wait()
            self._deal_added = trio.Event()

    async def _connect_executor(self) -> Executor | None:
        """The Docker executor, connecting on first use (a node without Docker still starts;
        its deals fail until Docker answers, and their clients get refunds)."""
        if self._executor is None:
            self._executor = await connect_executor(self._executor_factory, log)
        return self._executor

    # --- /lilypad/deal/2 ----------------------------------------------------------------

    async def on_deal_proposal(
        self, peer_id: str, request: wire.DealProposal
    ) -> wire.DealAccepted | wire.DealRefused:
        try:
            return await self._countersign(peer_id, request)
        except PeerMisbehaved as exc:
            self._blame(peer_id, exc)
            return wire.DealRefused(reason=f"invalid proposal: {exc}"[:500])

    async def _countersign(
        self, peer_id: str, request: wire.DealProposal
    ) -> wire.DealAccepted | wire.DealRefused:
        """Sign the deal and hold room for it; the signature is kept, for our own `openDeal`
        once the inputs are here (`_open_with_inputs`)."""
        unavailable = self._availability()
        if unavailable is not None:
            return wire.DealRefused(reason=f"provider cannot run jobs now: {unavailable}"[:500])
        deal = deal_from_wire(request.deal)
        job = proposed_job(request, peer_id)
        if isinstance(job, str):
            return wire.DealRefused(reason=job)
        held = self._book.get(request.resource_offer_cid)
        resource = held.body if held is not None else None
        if not (isinstance(resource, wire.ResourceOffer)
                and resource.provider == self._identity.address):
            return wire.DealRefused(reason="no such resource offer of ours (expired?)")
        try:
            chain = self._chains.require(request.chain_id)
        except UnknownChain as exc:
            return wire.DealRefused(reason=str(exc))
        key = chain.deal_id(deal).hex()
        if self._store.get(key) is None:
            # Before any signature: the module's definition, our policy, and its image (which
            # may take a pull); outside the lock, which only guards the capacity check.
            refused = await self._modules.refusal(peer_id, job, resource.modules)
            if refused is not None:
                event(log, "deal.refused", job=job.cid, reason=refused)
                return wire.DealRefused(reason=refused[:500])
        # Read before taking the lock: a chain call under it would queue every proposal behind
        # the chain's latency. The contract checks the collateral again when the deal opens.
        free_balance = await chain.free_balance()
        async with self._lock:
            known = self._store.provider_deal(key)
            if known is not None:  # a retry: same answer
                return wire.DealAccepted()
            reason = deal_mismatch(deal, job, resource, self._clock_ms(),
                                   self._max_run_time_s(job.module))
            if reason is None and not has_room(self._store, job.spec, resource.spec):
                reason = "no free capacity"
            if reason is None:
                promised = promised_collateral(self._store, chain.chain_id)
                if free_balance - promised < deal.collateral:
                    reason = (f"provider's deposit cannot cover the collateral ({free_balance} "
                              f"wei free, {promised} wei of it promised to deals not open yet)")
            if reason is not None:
                event(log, "deal.refused", job=job.cid, reason=reason)
                return wire.DealRefused(reason=reason)
            # Checked in the named chain's domain: a signature made for another chain fails.
            chain.check_deal_signature(deal, request.job_creator_signature, job.job_creator)
            if not self._modules.catalog.keep(job.module):  # stored once a deal needs it
                return wire.DealRefused(reason="the module's definition was let go: propose again")
            signature = chain.sign_deal(deal)
            record = new_provider_deal(key, now_ms=self._clock_ms(),
                                       result_deadline_ms=deal.result_deadline * 1000)
            self._store.insert(record, ProviderDetail(
                deal=deal, job_creator_signature=request.job_creator_signature,
                provider_signature=signature, module=job.module, spec=job.spec,
                job_offer_cid=job.cid, job_offer=request.job_offer,
            ), chain_id=chain.chain_id)
            self._deal_added.set()
        event(log, "deal.countersigned", key=key, job=job.cid, client=job.job_creator,
              chain_id=chain.chain_id)
        return wire.DealAccepted()

    def _max_run_time_s(self, module_id: str) -> int:
        """The module's maximum run time (the gate has resolved it before a deal is signed; the
        longest any module may have if it is gone since)."""
        try:
            return self._modules.catalog.resolve(module_id)[1].max_run_time_s
        except UnknownModule:
            return MAX_RUN_TIME_S

    # --- /lilypad/job/4 -----------------------------------------------------------------

    async def on_job_request(self, peer_id: str, request: wire.JobRequest,
                             gate: BodyGate) -> Reply:
        try:
            answer = await self._job_reply(peer_id, request, gate)
        except JobTooLarge as exc:
            answer = wire.DealRefused(reason=str(exc)[:500])
        return answer if isinstance(answer, Reply) else Reply(answer)

    async def _job_reply(self, peer_id: str, request: wire.JobRequest,
                         gate: BodyGate) -> wire.DealMessage | Reply:
        try:
            deal = deal_from_wire(request.deal)
        except PeerMisbehaved as exc:
            self._blame(peer_id, exc)
            return wire.DealRefused(reason=str(exc)[:500])
        try:
            chain = self._chains.require(request.chain_id)
        except UnknownChain as exc:
            return wire.DealRefused(reason=str(exc))
        key = chain.deal_id(deal).hex()  # the deal ID binds the chain: another chain's is unknown
        stored = self._store.provider_deal(key)
        if stored is None:
            return wire.DealRefused(reason="unknown deal")
        if wire.address_from_peer_id_text(peer_id) != deal.job_creator:
            return wire.DealRefused(reason="only the job creator may send the inputs")
        spool = self._spool_of(key, "inputs")
        if stored.record.phase is Phase.AGREED:
            opened = await self._open_with_inputs(stored, deal, chain, request, gate, spool)
            if isinstance(opened, wire.DealRefused):
                return opened
            stored = opened
        if stored.record.phase is Phase.OPEN:
            checked = stored.detail.inputs_nonce  # None: found open on chain, not checked
            if checked is None or not spool.exists():
                if not spool.exists():  # spooled before we opened it; taken again if lost
                    await receive_inputs(gate, request, bytes.fromhex(key), spool,
                                         self._max_job_bytes)
                refused = await refuse_uncommitted(stored, deal, request, spool, self._identity,
                                                   then="the job is not run")
                if refused is not None:
                    return refused
                checked = request.inputs_nonce
            stored = self._save(stored, Event.INPUTS_DELIVERED, inputs_spool=str(spool),
                                inputs_nonce=checked, output_recipient=request.output_recipient)
        if stored.record.phase is Phase.RUNNING:
            stored = await self._execute_once(key, deal, chain)
            if stored.record.phase is Phase.RUNNING:
                return wire.DealRefused(reason=(stored.detail.error or "job failed")[:500])
        tarball = self._spool_of(key, "output.tar")
        if stored.detail.result_hash is None or not tarball.exists():
            return wire.DealRefused(reason=f"deal is {stored.record.phase}")
        return result_reply(tarball, bytes.fromhex(key), stored.detail)

    async def _open_with_inputs(
        self, stored: ProviderDeal, deal: Deal, chain: DealChain, request: wire.JobRequest,
        gate: BodyGate, spool: Path,
    ) -> ProviderDeal | wire.DealRefused:
        """Take the inputs, then open the deal on chain ourselves: a job creator holds no
        signature of ours to open it with, so it can never lock our collateral for a job whose
        inputs it withholds, nor open a deal we have given up on."""
        key = stored.record.key
        if key in self._opening:  # one transfer at a time into the deal's spool
            return wire.DealRefused(reason="the deal's inputs are arriving already")
        self._opening.add(key)  # the agreement timeout waits for the inputs and the open
        try:
            status = await chain.status(deal)
            checked = None
            if status is DealStatus.NONE:
                refused = await self._take_inputs_and_open(stored, deal, chain, request, gate,
                                                           spool)
                if refused is not None:
                    return refused
                status, checked = DealStatus.OPEN, request.inputs_nonce
        finally:
            self._opening.discard(key)
        if status is not DealStatus.OPEN:
            return wire.DealRefused(reason=f"deal is {status.name} on chain")
        return self._save(stored, Event.OPENED, inputs_nonce=checked)

    async def _take_inputs_and_open(
        self, stored: ProviderDeal, deal: Deal, chain: DealChain, request: wire.JobRequest,
        gate: BodyGate, spool: Path,
    ) -> wire.DealRefused | None:
        key = stored.record.key
        needed = deal.payment + deal.mediation_fee
        free = await chain.client.free_balance(deal.job_creator)
        if free < needed:  # before the inputs cost us their transfer
            return wire.DealRefused(reason=f"the job creator's free deposit ({free} wei) "
                                    f"cannot pay the deal ({needed} wei): deposit first")
        await receive_inputs(gate, request, bytes.fromhex(key), spool, self._max_job_bytes)
        refused = await refuse_uncommitted(stored, deal, request, spool, self._identity)
        if refused is not None:
            return refused
        try:
            move = await chain.open_deal(deal, stored.detail.job_creator_signature,
                                         stored.detail.provider_signature)
        except (InsufficientFunds, DeadlineError, InvalidDealTerms) as exc:
            self._save(stored, Event.CANCEL, error=f"openDeal refused: {exc}")
            return wire.DealRefused(reason=f"the deal cannot be opened: {exc}"[:500])
        event(log, "deal.opened", key=key, sent=move.sent, status=move.status.name)
        return None if move.status is DealStatus.OPEN else wire.DealRefused(
            reason=f"deal is {move.status.name} on chain")

    def _spool_of(self, key: str, kind: str) -> Path:
        return self._spool / f"{key}.{kind}"

    async def _execute_once(self, key: str, deal: Deal, chain: DealChain) -> ProviderDeal:
        """Run the deal's job, or wait for the run already in progress; the stored deal after."""
        running = self._runs.get(key)
        if running is not None:
            await running.wait()
        else:
            self._runs[key] = trio.Event()
            try:
                await self._execute(key, deal, chain)
            finally:
                self._runs.pop(key).set()
        stored = self._store.provider_deal(key)
        assert stored is not None
        return stored

    async def _execute(self, key: str, deal: Deal, chain: DealChain) -> None:
        stored = self._store.provider_deal(key)
        assert stored is not None
        module: Module | None = None
        timeout_s = 0.0
        executor = await self._connect_executor()
        if executor is None:
            self._update(stored, error="Docker is not available on this provider")
            return
        left_s = deal.result_deadline - self._clock_ms() / 1000 - RESULT_DELIVERY_MARGIN_S
        if left_s <= 0:
            self._update(stored, error="no time left before the result deadline")
            return
        event(log, "job.started", key=key, module=stored.detail.module)
        started_ms = self._clock_ms()
        tarball = self._spool_of(key, "output.tar")
        discard(tarball)  # a run cut short by a crash
        try:
            module = self._modules.catalog.resolve(stored.detail.module)[1]
            # The deal was signed leaving the module's whole maximum; the deadline cuts a
            # run shorter only when the inputs came late.
            timeout_s = min(left_s, module.max_run_time_s)
            if self._cheat_false_failure:
                raise JobFailed(1, b"")
            result = await executor.run_streamed(
                JobSpec(stored.detail.module),
                inputs_spool(stored.detail.inputs_spool),
                self._identity.sealing_private_key(),
                inputs_context(bytes.fromhex(key)),
                timeout_s=timeout_s,
                output=tarball,
            )
        except (ExecError, OSError) as exc:  # OSError: the spool is gone, the disk full
            discard(tarball)
            if module is None or (claim := classify(exc, timeout_s=timeout_s,
                                                     module=module)) is None:
                event(log, "job.failed", logging.WARNING, key=key, error=str(exc))
                self._update(stored, error=f"job failed: {exc}")
                return
            # The job's own failure: committed as its result, so the deal ends paid, not
            # timed out (roles/_failure.py); the signed report is what the result stream sends.
            report = failure_report(claim, exc, run_ms=self._clock_ms() - started_ms,
                                    module=module, account=self._identity.eth_account())
            await run_blocking(write_report, tarball, report)
            self._commit(stored, deal, chain, claim.digest(), failure=str(claim.failure))
            event(log, "job.failed_in_job", key=key, failure=claim.failure, error=str(exc))
            return
        digest = result.result_hash
        if self._cheat_wrong_output:
            digest = await run_blocking(tamper_output, tarball)
        self._commit(stored, deal, chain, digest, result_cid=result.result_cid)
        event(log, "job.finished", key=key, cid=result.result_cid,
              seconds=round(result.timings.total_s, 3))

    def _commit(self, stored: ProviderDeal, deal: Deal, chain: DealChain, digest: bytes,
                **detail: Any) -> None:
        """Sign the ResultCommitment of `digest` (the output spool holds what is sent)."""
        self._save(stored, Event.RESULT_COMMITTED, result_hash=digest,
                   commitment_signature=chain.sign_commitment(deal, digest), **detail)

    # --- /lilypad/result/1 --------------------------------------------------------------

    async def on_acceptance(
        self, peer_id: str, request: wire.AcceptanceNotice
    ) -> wire.AcceptanceAck | wire.DealRefused:
        key = request.deal_id.hex()
        stored = self._store.provider_deal(key)
        if stored is None:
            return wire.DealRefused(reason="unknown deal")
        if stored.record.phase in (Phase.ACCEPTED, Phase.SETTLED):
            return wire.AcceptanceAck(deal_id=request.deal_id)
        if stored.record.phase not in (Phase.RESULT_READY, Phase.RESULT_SUBMITTED):
            return wire.DealRefused(reason=f"deal is {stored.record.phase}")
        if request.result_hash != stored.detail.result_hash:
            return wire.DealRefused(reason="acceptance of another result")
        chain = self._chains.require(stored.chain_id)
        if request.chain_id != chain.chain_id:
            return wire.DealRefused(reason="the deal is on another chain")
        deal = stored.detail.deal
        try:
            chain.check_acceptance(deal, request.result_hash, request.job_creator_signature)
        except PeerMisbehaved as exc:
            self._blame(peer_id, exc)
            return wire.DealRefused(reason=str(exc)[:500])
        self._save(stored, Event.ACCEPTANCE_RECEIVED,
                   acceptance_signature=request.job_creator_signature)
        return wire.AcceptanceAck(deal_id=request.deal_id)

    # --- timeouts and settlement ----------------------------------------------------------

    async def _tick(self) -> bool:  # whether any deal is open
        now = self._clock_ms()
        accepted: list[ProviderDeal] = []
        open_deals = self._store.provider_deals(open_only=True)
        for stored in open_deals:
            record = stored.record
            if record.phase is Phase.ACCEPTED:
                accepted.append(stored)
                continue
            deal = stored.detail.deal
            due = due_timeout(record, self._timeouts, deal.acceptance_window * 1000)
            past_deadline = record.result_deadline_ms is not None and now > (
                record.result_deadline_ms + CLAIM_MARGIN_MS)
            if record.phase in (Phase.OPEN, Phase.RUNNING) and past_deadline:
                # The client claims its refund; follow the chain to the end.
                status = await self._chains.require(stored.chain_id).status(deal)
                if status.is_final:
                    self._save(stored, Event.TIMEOUT_CLAIMED, chain_status=status.name)
                continue
            if due is None or now < due.at_ms:
                continue
            await self._on_timeout(stored, deal, due.event)
        by_chain: dict[int | None, list[ProviderDeal]] = {}
        for stored in accepted:  # one settleBatch per chain: money stays on its own chain
            by_chain.setdefault(stored.chain_id, []).append(stored)
        for chain_id, batch in by_chain.items():
            await self._settle(self._chains.require(chain_id), batch[:MAX_SETTLE_BATCH])
        return bool(open_deals)

    async def _on_timeout(self, stored: ProviderDeal, deal: Deal, then: Event) -> None:
        chain = self._chains.require(stored.chain_id)
        if stored.record.phase is Phase.AGREED:
            if stored.record.key in self._opening:  # its inputs are arriving, or it opens
                return
            status = await chain.status(deal)
            if status is DealStatus.OPEN:
                self._save(stored, Event.OPENED)
            elif status is DealStatus.NONE:
                self._save(stored, Event.TIMED_OUT, error="the client never opened the deal")
            return
        if then is Event.RESULT_SUBMITTED:
            move = await chain.submit_result(
                deal, required(stored.detail.result_hash, "result hash"),
                required(stored.detail.commitment_signature, "commitment"))
            if move.status is DealStatus.SETTLED:
                self._save(stored, Event.SETTLED)
            elif move.status is DealStatus.RESOLVED:
                await self._save_resolution(stored, deal)
            else:
                if move.status is DealStatus.DISPUTED and self._disputes is not None:
                    self._disputes.defend_soon(stored)
                self._save(stored, Event.RESULT_SUBMITTED, submitted_on_chain=move.sent)
            return
        if then is Event.TIMEOUT_CLAIMED:
            try:
                move = await chain.claim_timeout(deal)
            except DeadlineError:
                # The chain's clock is behind ours, or the deal is disputed (the mediation
                # window runs): next tick; meanwhile defend it if it is disputed.
                if self._disputes is not None:
                    self._disputes.defend_soon(stored)
                return
            if move.status is DealStatus.SETTLED:
                self._save(stored, Event.SETTLED)
            elif move.status is DealStatus.RESOLVED:
                await self._save_resolution(stored, deal)
            else:
                self._save(stored, Event.TIMEOUT_CLAIMED, chain_status=move.status.name)

    async def _settle(self, chain: DealChain, accepted: list[ProviderDeal]) -> None:
        items = [SettlementItem(s.detail.deal, required(s.detail.result_hash, "result hash"),
                                required(s.detail.acceptance_signature, "acceptance"))
                 for s in accepted]
        sent, settled = await chain.settle_batch(items)
        for stored, item in zip(accepted, items, strict=True):
            status = (DealStatus.SETTLED if chain.deal_id(item.deal) in settled
                      else await chain.status(item.deal))
            if status is DealStatus.SETTLED:
                self._save(stored, Event.SETTLED, settled_ms=self._clock_ms(),
                           batch_size=len(items) if sent else 0)
            elif status is DealStatus.RESOLVED:  # disputed after accepting, and ruled on
                await self._save_resolution(stored, item.deal)
            elif status is DealStatus.DISPUTED and self._disputes is not None:
                self._disputes.defend_soon(stored)
        event(log, "deals.settled", count=len(items), transactions=sent, chain_id=chain.chain_id)

    async def _save_resolution(self, stored: ProviderDeal, deal: Deal) -> None:
        chain = self._chains.require(stored.chain_id)
        state = await chain.client.deal_state(chain.deal_id(deal))
        outcome = state.outcome.name if state.outcome is not None else None
        self._save(stored, Event.RESOLVED, outcome=outcome)
        event(log, "deal.resolved", key=stored.record.key, outcome=outcome)

    def _save(self, stored: ProviderDeal, event_: Event, **detail: Any) -> ProviderDeal:
        record, _ = advance(stored.record, event_, self._clock_ms())
        merged = replace(stored.detail, **detail)
        self._store.update(record, merged, event_)
        if record.phase.is_final:  # nobody asks for this deal's bytes any more
            discard(*(self._spool_of(record.key, kind) for kind in ("inputs", "output.tar")))
        event(log, "deal.transition", key=record.key, phase=record.phase, on=event_)
        return replace(stored, record=record, detail=merged)

    def _update(self, stored: ProviderDeal, **detail: Any) -> None:
        self._store.update(stored.record, replace(stored.detail, **detail))
