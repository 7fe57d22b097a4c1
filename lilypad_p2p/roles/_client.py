"""The client role (job creator): post job offers and drive each deal to its end.

    client = ClientRole(...); await nursery.start(client.run)
    key = await client.submit(JobSubmission(module="hash", params={"text": "hi"}))
    client.observe_proposal(envelope)     # every MatchProposal the network delivers

Each deal has one driver task (`_drive`), started on submit and, after a restart, for every
unfinished deal in the store. A driver looks at the deal's persisted phase, does that phase's
action, persists the next phase and loops; every action is safe to repeat, so a driver that
resumes after a crash simply does its phase's action again:

- offered: wait for a match (roles/_client_matching.py): the first valid solver proposal
  naming our job offer, or for a targeted job the named provider's resource offer from our
  book; sign the deal -> matched.
- matched: send the deal over /lilypad/deal/2; accepted -> agreed; refused -> offered.
- agreed/open/running: stream the spooled inputs over /lilypad/job/4 until a result comes
  back (the provider may be restarting); the provider opens the deal on chain once it holds
  them (agreed -> open -> running as we learn it); check the commitment, open the output
  stream into the results file, check its hash: accepted (the acceptance is signed and stored
  first) or rejected (roles/_transfer.py). After the result deadline: claimTimeout. Unopened
  or with a result recorded on chain that never reached us: roles/_client_chain_watch.py.
- accepted: hand the acceptance to the provider over /lilypad/result/1 and wait for it to
  settle; if it does not within the settlement timeout, settle ourselves.

A job pays on the chain its offer names (`JobSubmission.chain_id`; default: the node's first).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import trio
from eth_utils import to_checksum_address

from lilypad_p2p import wire
from lilypad_p2p.blocking import run_blocking
from lilypad_p2p.chain import ChainError, Deal, DealStatus, RecordFeed
from lilypad_p2p.config import DEFAULT_MAX_JOB_BYTES
from lilypad_p2p.deal_detail import ClientDetail, required
from lilypad_p2p.errors import LilypadError, PeerMisbehaved
from lilypad_p2p.exec import ModuleCatalog
from lilypad_p2p.exec._job_stream import (
    FileSource,
    inputs_commitment,
    inputs_stream_size,
    write_committed_spool,
)
from lilypad_p2p.identity import Identity
from lilypad_p2p.logs import event
from lilypad_p2p.market import (
    DEFAULT_TIMEOUTS,
    DealRecord,
    Event,
    OfferBook,
    Phase,
    Timeouts,
    advance,
    due_timeout,
    new_client_deal,
)
from lilypad_p2p.net import DEAL_STREAM, JOB_STREAM, DealTransport, NetError, PeerAction
from lilypad_p2p.roles._client_chain_watch import (
    WITHHELD,
    WithheldResults,
    watch_interval_s,
    watch_job_stream,
)
from lilypad_p2p.roles._client_control import ClientControl
from lilypad_p2p.roles._client_disputes import ClientDisputes, refuse_user_dispute
from lilypad_p2p.roles._client_matching import (
    JobMatcher,
    job_offer,
    timed_out_error,
    withdraw_offer,
)
from lilypad_p2p.roles._client_records import ClientRecords, RecordPolicy
from lilypad_p2p.roles._client_results import UNDELIVERED, hand_acceptance, result_outcome
from lilypad_p2p.roles._client_submission import (
    UNBOUND_INPUTS,
    JobSubmission,
    SubmissionError,
    check_funds,
    job_deadline_s,
    new_job_offer,
    promised_wei,
    unbound_job_ends,
)
from lilypad_p2p.roles._input_files import check_job_size
from lilypad_p2p.roles._settlement import DealChain, DealChains
from lilypad_p2p.roles._terms import ACCEPTANCE_WINDOW_S, MEDIATION_FEE_WEI
from lilypad_p2p.roles._transfer import (
    Delivery,
    ResultReceiver,
    discard,
    job_request,
    spool_context,
)
from lilypad_p2p.store import ClientDeal, DealStore, StoreUnavailable

log = logging.getLogger("lilypad_p2p.client")

# Bound on one deal proposal (a job's exchange is bounded by its deadline).
DEAL_REQUEST_TIMEOUT_S = 15.0
# Pause between attempts when a provider is unreachable or restarting.
RETRY_INTERVAL_S = 1.0
# How long a job offer stays open for matching (longer if the match timeout is): room for a
# second and third match when a matched provider is silent, fresh enough for offer sync
# (node_publish.SYNC_FRESHNESS_MARGIN_MS under the max age).
JOB_OFFER_LIFETIME_MS = 100_000
# A resource offer whose provider refused our deal is not tried again for this long.
REFUSAL_BACKOFF_MS = 2_000
# Phases whose step checks what the provider sent (a failed check blames it).
_FACING_PROVIDER = (Phase.MATCHED, Phase.AGREED, Phase.OPEN, Phase.RUNNING)
# How often a waiting driver re-checks the chain (settlement, someone else's claim).
CHAIN_POLL_INTERVAL_S = 1.0


class ClientRole:
    def __init__(
        self,
        identity: Identity,
        *,
        store: DealStore,
        chains: DealChains,
        book: OfferBook,
        publish: Callable[[wire.Message], Awaitable[None]],
        transport: DealTransport,
        node_record: Callable[[str], wire.NodeRecord | None],
        mediators: tuple[str, ...],
        results_dir: Path,
        clock_ms: Callable[[], int],
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        acceptance_window_s: int = ACCEPTANCE_WINDOW_S,
        disputes: ClientDisputes | None = None,
        modules: ModuleCatalog | None = None,
        max_job_bytes: int = DEFAULT_MAX_JOB_BYTES,
        records: ClientRecords | None = None,
    ) -> None:
        # Deal streams to providers; inputs rest sealed in the spool next to the results.
        self._transport = transport
        self._max_job_bytes = max_job_bytes
        self._spool = results_dir.parent / "spool" / "client"
        self._identity = identity
        self._records = records
        self._modules = modules or ModuleCatalog()
        self._disputes = disputes  # mediation; None: bad outputs are only rejected
        self.mediation_fee_wei = (disputes.settings.mediation_fee_wei if disputes is not None
                                  else MEDIATION_FEE_WEI)
        self._store = store
        self._chains = chains
        self._book = book
        self._publish = publish
        self._node_record = node_record
        self._mediators = tuple(to_checksum_address(m) for m in mediators)
        self._results_dir = results_dir
        self._clock_ms = clock_ms
        self._timeouts = timeouts
        self._acceptance_window_s = acceptance_window_s
        self._wakeups: dict[str, trio.Event] = {}
        # Deals whose signed Acceptance is on its way to the provider: a dispute must wait,
        # since once the provider holds it the deal settles on it whatever a dispute says.
        self._delivering: set[str] = set()
        self._withheld = WithheldResults()
        self._matcher = JobMatcher(book, identity=identity, store=store, chains=chains,
                                   records=records, mediators=self._mediators,
                                   disputes=disputes, acceptance_window_s=acceptance_window_s,
                                   clock_ms=clock_ms, wake=self._wake)
        self._nursery: trio.Nursery | None = None

    # --- service ------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            if self._disputes is not None:
                nursery.start_soon(partial(
                    self._disputes.fees.run, self._store,
                    checking=self._disputes.settings.check_rate_ppm > 0))
            for stored in self._store.client_deals(open_only=True):
                for then in unbound_job_ends(stored):
                    stored = self._save(stored, then, error=UNBOUND_INPUTS)
                event(log, "deal.resumed", key=stored.record.key, phase=stored.record.phase)
                if stored.record.phase is Phase.OFFERED:
                    self._matcher.restore_job_offer(stored)
                nursery.start_soon(self._drive, stored.record.key)
            task_status.started()
            await trio.sleep_forever()

    async def submit(self, job: JobSubmission) -> str:
        """Post `job`; returns its deal key (the job offer's CID).

        Raises:
            SubmissionError: bad parameters, an unknown module or chain, inputs too large.
            SubmissionDeferred: too little free deposit, for now.
        """
        if self._nursery is None:
            raise SubmissionError("the client role is not running")
        files: dict[str, FileSource] = {**job.files, **job.file_paths}
        nonce = wire.new_inputs_nonce()
        try:  # an unknown module or chain, bad parameters or files, inputs over the size limit
            module_id, module = self._modules.resolve(job.module)
            deadline_s = job_deadline_s(module, job.deadline_s)
            params = job.resolved_params(module)
            check_job_size(await run_blocking(inputs_stream_size, files, params),
                           self._max_job_bytes)
            chain = self._chains.require(job.chain_id)
            committed = await run_blocking(inputs_commitment, nonce, files, params)
        except (LilypadError, OSError) as exc:
            raise SubmissionError(str(exc)) from exc
        check_funds(await chain.free_balance(), job, chain.chain_id,
                    fee_wei=self.mediation_fee_wei, promised_wei=self.promised_wei(chain.chain_id))
        records = self._records or ClientRecords(RecordFeed(), RecordPolicy())
        asks = await records.job_fields(job.min_completed_deals, job.slash_free_blocks,
                                        chain.head_block)
        now = self._clock_ms()
        offer = new_job_offer(
            job, module_id, module, creator=self._identity.address, chain_id=chain.chain_id,
            mediators=self._mediators, asks=asks, now_ms=now, deadline_s=deadline_s,
            check_rate_ppm=self._disputes.settings.check_rate_ppm if self._disputes else 0,
            lifetime_ms=min(max(self._timeouts.match_ms, JOB_OFFER_LIFETIME_MS),
                            deadline_s * 1000), inputs_commitment=committed)
        envelope = self._identity.sign_envelope(offer, now)
        # Spooled sealed to ourselves: the disk never holds the inputs in the clear.
        self._spool.mkdir(mode=0o700, parents=True, exist_ok=True)
        spool = self._spool / f"{offer.cid}.inputs"
        try:
            await run_blocking(write_committed_spool, spool, self._identity.sealing_public_key,
                               spool_context(offer.cid), files, params, nonce, committed)
        except (LilypadError, OSError) as exc:
            raise SubmissionError(f"inputs: {exc}") from exc
        record = new_client_deal(offer.cid, now_ms=now, expires_ms=offer.expires_at)
        self._store.insert(record, ClientDetail(job_offer=envelope.encode(), module=module_id,
                                                submitted_ms=now, module_name=module.name,
                                                inputs_spool=str(spool), inputs_nonce=nonce,
                                                salt=job.salt),
                          chain_id=chain.chain_id)
        if offer.target_provider is None:
            await self._publish(offer)
        event(log, "job.submitted", key=offer.cid, module=module_id,
              target=offer.target_provider, chain_id=chain.chain_id)
        self._nursery.start_soon(self._drive, offer.cid)
        return offer.cid

    async def free_deposit(self, chain_id: int) -> int:
        return await self._chains.require(chain_id).free_balance()

    def promised_wei(self, chain_id: int) -> int:
        """What our jobs on `chain_id` whose deals are not open yet will lock."""
        return promised_wei(self._store.client_deals(open_only=True), chain_id,
                            self.mediation_fee_wei)

    def observe_proposal(self, envelope: wire.SignedEnvelope) -> None:
        """Note the matches naming our job offers (the first valid one per job wins)."""
        self._matcher.observe_proposal(envelope)

    # --- the driver ---------------------------------------------------------------------

    async def _drive(self, key: str) -> None:
        # From the start, so a wake that comes while a step runs is kept for its next wait.
        self._wakeups.setdefault(key, trio.Event())
        while True:
            stored = self._store.client_deal(key)
            assert stored is not None
            if stored.record.phase.is_final:
                self._wakeups.pop(key, None)
                self._matcher.forget(key)
                self._withheld.forget(key)
                discard(self._spool / f"{key}.inputs")
                event(log, "deal.finished", key=key, phase=stored.record.phase)
                return
            try:
                await self._step(stored)
            except (ChainError, NetError, PeerMisbehaved, trio.TooSlowError, StoreUnavailable,
                    OSError) as exc:
                self._blame_provider(stored, exc)
                # Transient (chain, network, a full disk) or the provider's fault: try again
                # shortly; every phase has a timeout that ends the deal if this never recovers.
                event(log, "deal.retry", logging.WARNING, key=key, phase=stored.record.phase,
                      error=repr(exc))
                await trio.sleep(RETRY_INTERVAL_S)

    def _blame_provider(self, stored: ClientDeal, exc: Exception) -> None:
        """A provider's answer failed our checks (garbage on the wire: the transport's)."""
        deal = stored.detail.deal
        if (isinstance(exc, PeerMisbehaved) and not isinstance(exc, wire.WireError)
                and deal is not None and stored.record.phase in _FACING_PROVIDER
                and (record := self._node_record(deal.provider)) is not None):
            self._transport.report(record.peer_id, PeerAction.LOW_TOLERANCE, str(exc))

    async def _step(self, stored: ClientDeal) -> None:
        record = stored.record
        due = due_timeout(record, self._timeouts)
        if due is not None and self._clock_ms() >= due.at_ms:
            await self._on_timeout(stored, due.event)
            return
        handler = {
            Phase.OFFERED: self._find_match,
            Phase.MATCHED: self._propose,
            Phase.AGREED: self._run_job,
            Phase.OPEN: self._run_job,
            Phase.RUNNING: self._run_job,
            Phase.ACCEPTED: self._deliver_acceptance,
            Phase.DISPUTED: self._mediate,
        }[record.phase]
        await handler(stored)

    def _save(self, stored: ClientDeal, event_: Event, **detail: Any) -> ClientDeal:
        deadline = detail.pop("result_deadline_ms", None)
        record, _ = advance(stored.record, event_, self._clock_ms(), result_deadline_ms=deadline)
        merged = replace(stored.detail, **detail)
        self._store.update(record, merged, event_)
        event(log, "deal.transition", key=record.key, phase=record.phase, on=event_)
        return replace(stored, record=record, detail=merged)

    def _update(self, stored: ClientDeal, **detail: Any) -> None:
        current = self._store.client_deal(stored.record.key) or stored
        self._store.update(current.record, replace(current.detail, **detail))

    async def _wait(self, key: str, seconds: float) -> None:
        wakeup = self._wakeups.setdefault(key, trio.Event())
        with trio.move_on_after(seconds):
            await wakeup.wait()
        self._wakeups[key] = trio.Event()

    def _wake(self, key: str) -> None:
        wakeup = self._wakeups.get(key)
        if wakeup is not None:
            wakeup.set()

    def _until_due_s(self, record: DealRecord) -> float:
        due = due_timeout(record, self._timeouts)
        if due is None:
            return CHAIN_POLL_INTERVAL_S
        return max(0.0, (due.at_ms - self._clock_ms()) / 1000)

    def _chain(self, stored: ClientDeal) -> DealChain:
        """The chain the deal pays on (its job offer's)."""
        return self._chains.require(stored.chain_id)

    def _provider_record(self, stored: ClientDeal, provider: str) -> wire.NodeRecord | None:
        """The provider's latest NodeRecord: as gossiped, or as it was when the deal was agreed
        (after our restart we hear its record again only when it re-publishes it)."""
        live = self._node_record(provider)
        if live is not None or stored.detail.provider_record is None:
            return live
        return wire.NodeRecord.from_wire(wire.decode(stored.detail.provider_record))

    # offered -> matched (roles/_client_matching.py)

    async def _find_match(self, stored: ClientDeal) -> None:
        found = await self._matcher.find(stored)
        if found is not None:
            self._save(stored, Event.MATCH_FOUND, **found)
            return
        await self._wait(stored.record.key,
                         min(self._until_due_s(stored.record), RETRY_INTERVAL_S))

    def _give_up_match(self, stored: ClientDeal, why: str) -> None:
        self._save(stored, Event.REFUSED, **self._matcher.unanswered(stored, why))

    # matched -> agreed

    async def _propose(self, stored: ClientDeal) -> None:
        deal = required(stored.detail.deal, "deal")
        record = self._node_record(deal.provider)
        if record is None:
            await self._wait(stored.record.key, RETRY_INTERVAL_S)  # its NodeRecord is on its way
            return
        chain = self._chain(stored)
        proposal = wire.DealProposal(
            chain_id=chain.chain_id,
            job_offer=stored.detail.job_offer,
            resource_offer_cid=required(stored.detail.resource_offer, "resource offer"),
            deal=wire.deal_to_wire(deal),
            job_creator_signature=required(stored.detail.job_creator_signature,
                                           "job creator's signature"),
        )
        # No longer than the agreement timeout: the deal gives up on the provider then anyway.
        bound_s = min(DEAL_REQUEST_TIMEOUT_S, self._timeouts.agreement_ms / 1000)
        try:
            with trio.fail_after(bound_s):
                answer = await self._transport.request(record.peer_id, DEAL_STREAM, proposal,
                                                       addrs=record.listen_addrs)
        except (NetError, trio.TooSlowError) as exc:
            # Nothing is signed yet: rather than wait out the agreement timeout on a provider
            # we cannot reach, take the next offer now (this one sits out a while).
            self._give_up_match(stored, f"the provider did not answer the proposal: {exc!r}")
            return
        if isinstance(answer, wire.DealRefused):
            event(log, "deal.refused", key=stored.record.key, provider=deal.provider,
                  reason=answer.reason)
            # Most refusals pass (capacity frees up): the offer sits out for a while only.
            until = self._clock_ms() + REFUSAL_BACKOFF_MS
            refused = {**stored.detail.refused, proposal.resource_offer_cid: until}
            self._save(stored, Event.REFUSED, refused=refused, refusal=answer.reason)
            return
        assert isinstance(answer, wire.DealAccepted)
        self._save(stored, Event.COUNTERSIGNED,
                   provider_record=wire.encode(record.to_wire()), agreed_ms=self._clock_ms(),
                   deal_id=chain.deal_id(deal))
        await withdraw_offer(self._publish, job_offer(stored), self._clock_ms())

    # agreed/open/running -> accepted | rejected

    async def _run_job(self, stored: ClientDeal) -> None:
        chain = self._chain(stored)
        deal = required(stored.detail.deal, "deal")
        status = await chain.status(deal)
        if status is DealStatus.SETTLED:
            self._save(stored, Event.SETTLED)
            return
        if status.is_final:
            self._save(stored, Event.TIMEOUT_CLAIMED, chain_status=status.name)
            return
        if stored.record.phase is Phase.AGREED and status is not DealStatus.NONE:
            stored = self._opened(stored)  # while we were down
        if stored.record.phase is Phase.AGREED and self._clock_ms() >= (
                stored.record.phase_since_ms + self._timeouts.agreement_ms):
            # The provider took no inputs in time; it could still open the deal, so the chain
            # is watched until the deadline rules that out (roles/_client_chain_watch.py).
            await self._wait(stored.record.key,
                             min(watch_interval_s(deal), self._until_due_s(stored.record)))
            return
        # Agreed: the provider takes the inputs, opens the deal, then runs the job, all before
        # it answers; the deal's own deadline bounds that wait.
        bound_s = (max(0.0, deal.result_deadline - self._clock_ms() / 1000)
                   if stored.record.phase is Phase.AGREED else self._until_due_s(stored.record))
        if status is DealStatus.RESULT_SUBMITTED:  # by the provider, and not sent to us
            step = await self._withheld.next_step(chain, stored.record.key, deal,
                                                  can_dispute=self._disputes is not None)
            if isinstance(step, bytes):
                event(log, "job.result_withheld", logging.WARNING, key=stored.record.key)
                self._save(stored, Event.DISPUTE, result_hash=step,
                           provider_commitment=wire.NO_COMMITMENT, error=WITHHELD)
                return
            bound_s = step
        record = self._provider_record(stored, deal.provider)
        if record is None:
            await self._wait(stored.record.key, RETRY_INTERVAL_S)
            return
        if stored.record.phase is Phase.OPEN:
            stored = self._save(stored, Event.INPUTS_DELIVERED)
        deal_id = chain.deal_id(deal)
        request, inputs = job_request(stored, deal, chain.chain_id, deal_id, self._identity,
                                      record.sealing_public_key)
        result = self._results_dir / f"{stored.record.key}.tar"
        with trio.move_on_after(bound_s) as exchange:
            watch = trio.CancelScope()  # opened, or a result recorded and withheld
            if status is not DealStatus.RESULT_SUBMITTED and self._nursery is not None:
                self._nursery.start_soon(self._watch_stream, stored.record.key, watch, exchange)
            try:
                answer, delivery = await self._transport.exchange(
                    record.peer_id, JOB_STREAM, request, inputs=inputs.chunks,
                    on_answer=ResultReceiver(
                        deal_id, lambda h, s: chain.check_commitment(deal, h, s),
                        self._identity.sealing_private_key(), result, self._max_job_bytes,
                        deal.provider),
                    addrs=record.listen_addrs)
            finally:
                watch.cancel()
            stored = self._store.client_deal(stored.record.key) or stored
            if isinstance(answer, wire.DealRefused):
                self._update(stored, last_refusal=answer.reason)
                event(log, "job.refused", logging.WARNING, key=stored.record.key,
                      reason=answer.reason)
                await trio.sleep(RETRY_INTERVAL_S)
                return
            assert isinstance(answer, wire.JobResultMessage)
            if stored.record.phase is Phase.AGREED:
                if await chain.status(deal) is DealStatus.NONE:
                    raise PeerMisbehaved("a result for a deal the provider has not opened")
                stored = self._opened(stored)
            self._withheld.forget(stored.record.key)
            self._check_result(stored, deal, answer, delivery)

    async def _watch_stream(self, key: str, scope: trio.CancelScope,
                            stream: trio.CancelScope) -> None:
        with scope:  # ends with the stream (roles/_client_chain_watch.py)
            current = partial(self._store.client_deal, key)
            if (stored := current()) is not None:
                left_ms = (stored.record.phase_since_ms + self._timeouts.agreement_ms
                           - self._clock_ms())
                await watch_job_stream(current, self._chain(stored), self._opened, stream,
                                       agreement_ends=trio.current_time() + left_ms / 1000)

    def _opened(self, stored: ClientDeal) -> ClientDeal:
        stored = self._save(stored, Event.OPENED, opened_ms=self._clock_ms())
        return self._save(stored, Event.INPUTS_DELIVERED)

    def _check_result(self, stored: ClientDeal, deal: Deal, answer: wire.JobResultMessage,
                      delivery: Delivery | None) -> None:
        if delivery is None:
            self._blame_provider(stored, PeerMisbehaved(UNDELIVERED))
        outcome, detail = result_outcome(
            stored, deal, answer, delivery, chain=self._chain(stored), store=self._store,
            results_dir=self._results_dir, disputes=self._disputes, now_ms=self._clock_ms())
        self._save(stored, outcome, **detail)

    # accepted -> settled

    async def _deliver_acceptance(self, stored: ClientDeal) -> None:
        chain = self._chain(stored)
        deal = required(stored.detail.deal, "deal")
        status = await chain.status(deal)
        stored = self._store.client_deal(stored.record.key) or stored
        if stored.record.phase is not Phase.ACCEPTED:  # disputed meanwhile: send nothing
            return
        if status is DealStatus.SETTLED:
            self._save(stored, Event.SETTLED, settled_ms=self._clock_ms())
            return
        if not stored.detail.acceptance_delivered:
            record = self._provider_record(stored, deal.provider)
            if record is not None:
                self._delivering.add(stored.record.key)
                try:
                    taken = await hand_acceptance(self._transport, chain, deal, stored, record)
                finally:
                    self._delivering.discard(stored.record.key)
                if taken:
                    self._update(stored, acceptance_delivered=True)
                    return
        # Woken early by the user's `dispute`, which moves the deal on.
        await self._wait(stored.record.key,
                         min(CHAIN_POLL_INTERVAL_S, self._until_due_s(stored.record)))

    # disputed -> resolved

    async def _mediate(self, stored: ClientDeal) -> None:
        assert self._disputes is not None, "a deal is disputed only with mediation set up"
        ended = await self._disputes.step(stored, self._results_dir)
        if ended is not None:
            self._save(stored, ended[0], **ended[1])

    # timeouts

    async def _on_timeout(self, stored: ClientDeal, then: Event) -> None:
        record = stored.record
        if record.phase is Phase.MATCHED:
            self._give_up_match(stored, "the provider did not answer the proposal in time")
            return
        chain = self._chain(stored)
        if record.phase is Phase.AGREED:
            # The provider may have opened it (our inputs reached it): look before cancelling.
            deal = required(stored.detail.deal, "deal")
            if await chain.status(deal) is not DealStatus.NONE:
                self._save(stored, Event.OPENED)
                return
        if then is Event.TIMEOUT_CLAIMED:
            deal = required(stored.detail.deal, "deal")
            if await chain.status(deal) is DealStatus.RESULT_SUBMITTED:
                await self._run_job(stored)  # a result recorded, never sent: no timeout to claim
                return
            move = await chain.claim_timeout(deal)
            if move.status is DealStatus.SETTLED:
                self._save(stored, Event.SETTLED)
                return
            self._save(stored, Event.TIMEOUT_CLAIMED, chain_status=move.status.name)
            return
        if then is Event.SETTLED:
            move = await chain.settle(required(stored.detail.deal, "deal"),
                                       required(stored.detail.result_hash, "result hash"),
                                       required(stored.detail.acceptance_signature, "acceptance"))
            self._save(stored, Event.SETTLED, settled_by_us=move.sent,
                       settled_ms=self._clock_ms())
            return
        self._save(stored, then, error=timed_out_error(record.phase, job := job_offer(stored)))
        if record.phase is Phase.OFFERED:  # the offer may outlive our wait: solvers drop it
            await withdraw_offer(self._publish, job, self._clock_ms())

    # --- control (roles/_client_control.py) ---------------------------------------------

    def control_handlers(
        self, markets: Collection[str] | None = None,
    ) -> dict[str, Callable[[dict[str, Any]], Awaitable[object]]]:
        """`markets`: the node's; `submit` refuses a job for another (None: not checked)."""
        return ClientControl(self, self._store, book=self._book, modules=self._modules,
                             chains=self._chains, markets=markets,
                             address=self._identity.address, clock_ms=self._clock_ms).handlers()

    async def dispute(self, stored: ClientDeal) -> None:
        """Send a deal with a committed result to mediation (`lilypad-p2p dispute <key>`).

        Raises:
            LilypadError: no mediation is set up, or the deal has no disputable result.
        """
        if self._disputes is None or self._nursery is None:
            raise LilypadError("this client has no mediation set up")
        refuse_user_dispute(stored, stored.record.key in self._delivering)
        deal = required(stored.detail.deal, "deal")
        if await self._chain(stored).status(deal) is DealStatus.SETTLED:
            raise LilypadError("the deal is already settled on chain")
        stored = self._store.client_deal(stored.record.key) or stored  # as it is after the wait
        refuse_user_dispute(stored, stored.record.key in self._delivering)
        self._save(stored, Event.DISPUTE, disputed_by_user=True)
        self._wake(stored.record.key)
