"""The client role (job creator): post job offers and drive each deal to its end.

    client = ClientRole(...); await nursery.start(client.run)
    key = await client.submit(JobSubmission(module="hash", params={"text": "hi"}))
    client.observe_proposal(envelope)     # every MatchProposal the network delivers

Each deal has one driver task (`_drive`), started on submit and, after a restart, for every
unfinished deal in the store. A driver looks at the deal's persisted phase, does that phase's
action, persists the next phase and loops; every action is safe to repeat, so a driver that
resumes after a crash simply does its phase's action again:

- offered: wait for a match: the first valid solver proposal naming our job offer (several
  solvers proposing the same matching count once), or for a targeted job the named provider's
  resource offer from our book; sign the deal -> matched.
- matched: send the deal over /lilypad/deal/1; countersigned -> agreed; refused -> offered.
- agreed: openDeal (idempotent) -> open.
- open/running: stream the spooled inputs over /lilypad/job/2 until a result comes back (the
  provider may be restarting); check the commitment, open the output stream into the results
  file, check its hash: accepted (the acceptance is signed and stored first) or rejected
  (roles/_transfer.py). After the result deadline: claimTimeout.
- accepted: hand the acceptance to the provider over /lilypad/result/1 and wait for it to
  settle; if it does not within the settlement timeout, settle ourselves.

A job pays on one of the node's chains (`JobSubmission.chain_id`, default the first): its job
offer names it, and every signature, transaction and message of its deal uses that chain.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import trio
from eth_utils import to_checksum_address

from lilypad_p2p import wire
from lilypad_p2p.chain import ChainError, DealStatus, InsufficientFunds, RecordFeed
from lilypad_p2p.config import DEFAULT_MAX_JOB_BYTES
from lilypad_p2p.deal_detail import ClientDetail, DealDetail, required
from lilypad_p2p.errors import LilypadError, PeerMisbehaved
from lilypad_p2p.exec import Module, ModuleCatalog, UnknownModule
from lilypad_p2p.exec._job_stream import FileSource, inputs_stream_size, write_spool
from lilypad_p2p.exec._tarball import cid_of_digest
from lilypad_p2p.identity import Identity
from lilypad_p2p.logs import event
from lilypad_p2p.market import (
    DEFAULT_TIMEOUTS,
    DealRecord,
    Event,
    OfferBook,
    Phase,
    Side,
    Timeouts,
    advance,
    due_timeout,
    mismatch,
    new_client_deal,
)
from lilypad_p2p.net import DEAL_PROTOCOL, JOB_PROTOCOL, RESULT_PROTOCOL, NetError
from lilypad_p2p.roles._client_disputes import ClientDisputes
from lilypad_p2p.roles._client_records import ClientRecords, RecordPolicy
from lilypad_p2p.roles._failure import keep_failure
from lilypad_p2p.roles._input_files import InputFileError, check_input_files, check_job_size
from lilypad_p2p.roles._settlement import DealChain, DealChains, UnknownChain
from lilypad_p2p.roles._terms import (
    ACCEPTANCE_WINDOW_S,
    BUILTIN_NAMES,
    NoMediators,
    build_deal,
    required_deal_time_s,
)
from lilypad_p2p.roles._transfer import (
    MAX_STORED_RESULT_BYTES,
    Delivery,
    ResultReceiver,
    SpooledInputs,
    discard,
    inputs_context,
    inputs_spool,
    spool_context,
)
from lilypad_p2p.store import ClientDeal, DealStore, StoredDeal, StoreUnavailable

log = logging.getLogger("lilypad_p2p.client")

# Unless the submission says otherwise, a job's result is due this long after it is posted
# beyond its module's maximum run time: time to match, open the deal, move inputs and outputs.
DEADLINE_SLACK_S = 240
# What a job's deadline must leave beyond what a provider requires of its deal when it signs
# (roles/_terms.required_deal_time_s): time to be matched.
MATCH_ALLOWANCE_S = 15
# Bounds on one exchange with a provider (a job's exchange is bounded by its deadline).
DEAL_REQUEST_TIMEOUT_S = 15.0
ACCEPTANCE_REQUEST_TIMEOUT_S = 15.0
# Pause between attempts when a provider is unreachable or restarting.
RETRY_INTERVAL_S = 1.0
# How long a job offer stays open for matching (longer if the match timeout is): long enough
# for a second and third match when a matched provider does not answer, short enough that its
# envelope is still fresh for offer sync (node.SYNC_FRESHNESS_MARGIN_MS under the max age).
JOB_OFFER_LIFETIME_MS = 100_000
# A resource offer whose provider refused our deal is not tried again for this long.
REFUSAL_BACKOFF_MS = 2_000
# A resource offer whose provider did not answer our proposal (unreachable, or silent until the
# agreement timeout) sits out longer: it is overloaded or gone; the job is matched elsewhere.
UNANSWERED_BACKOFF_MS = 60_000
# How often a waiting driver re-checks the chain (settlement, someone else's claim).
CHAIN_POLL_INTERVAL_S = 1.0
MIB = 1024 * 1024
DEFAULT_MAX_PRICE_WEI = 10**16


class SubmissionError(LilypadError):
    """A job cannot be submitted as asked (unknown module, bad parameters, no funds...)."""


@dataclass(frozen=True, slots=True)
class JobSubmission:
    module: str
    params: Mapping[str, Any] = field(default_factory=dict)
    files: Mapping[str, bytes] = field(default_factory=dict)
    # Input files on this machine by name in /inputs, streamed from disk (never read whole).
    file_paths: Mapping[str, Path] = field(default_factory=dict)
    max_price_wei: int = DEFAULT_MAX_PRICE_WEI
    target: str | None = None  # a provider address
    # Seconds until the result is due; None: the module's max run time + DEADLINE_SLACK_S.
    deadline_s: int | None = None
    market: str = "cpu"
    # The deal's Job salt; None: random. An on-chain request's id (roles/_bridge.py), which
    # binds the deal to that request for LilypadRequests.deliver.
    salt: bytes | None = None
    # The settlement chain the job pays on; None: the node's default (first) chain.
    chain_id: int | None = None
    # The providers' record this job requires; None: the node's policy (_client_records.py).
    min_completed_deals: int | None = None
    slash_free_blocks: int | None = None

    def __post_init__(self) -> None:
        if self.salt is not None and len(self.salt) != 32:
            raise SubmissionError("a deal salt is 32 bytes")
        if not self.module:
            raise SubmissionError("a job names a module (ID or name)")
        if self.max_price_wei <= 0 or (self.deadline_s is not None and self.deadline_s <= 0):
            raise SubmissionError("max price and deadline must be positive")


def job_deadline_s(module: Module, asked_s: int | None) -> int:
    """The deadline (seconds after posting) a job of `module` gets when `asked_s` is asked.

    Raises:
        SubmissionError: `asked_s` is too short for providers to take the job: they refuse
            deals that could cut a run short of the module's maximum run time.
    """
    if asked_s is None:
        return module.max_run_time_s + DEADLINE_SLACK_S
    least_s = required_deal_time_s(module.max_run_time_s) + MATCH_ALLOWANCE_S
    if asked_s < least_s:
        raise SubmissionError(
            f"a deadline of {asked_s} s is too short for module {module.name}, which may run "
            f"{module.max_run_time_s} s: providers refuse deals that could cut a run short; "
            f"give at least {least_s} s (or none: {job_deadline_s(module, None)} s)")
    return asked_s


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _provider_address(target: str) -> str:
    """A provider named by address or by peer ID (both come from its one secp256k1 key)."""
    try:
        if target.startswith("0x"):
            return to_checksum_address(target)
        return wire.address_from_peer_id_text(target)
    except ValueError as exc:
        raise SubmissionError(f"target {target!r} is neither an address nor a peer ID") from exc


def result_hash(tarball: bytes) -> bytes:
    """The 32-byte result hash on chain: the sha2-256 digest inside the tarball's CID."""
    return hashlib.sha256(tarball).digest()


class ClientRole:
    def __init__(
        self,
        identity: Identity,
        *,
        store: DealStore,
        chains: DealChains,
        book: OfferBook,
        publish: Callable[[wire.Message], Awaitable[None]],
        request: Callable[..., Awaitable[wire.DealMessage]],
        node_record: Callable[[str], wire.NodeRecord | None],
        mediators: tuple[str, ...],
        results_dir: Path,
        clock_ms: Callable[[], int],
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        acceptance_window_s: int = ACCEPTANCE_WINDOW_S,
        disputes: ClientDisputes | None = None,
        modules: ModuleCatalog | None = None,
        exchange: Callable[..., Awaitable[Any]] | None = None,
        max_job_bytes: int = DEFAULT_MAX_JOB_BYTES,
        records: ClientRecords | None = None,
    ) -> None:
        # Job transfers (net/_transfer.py); inputs rest sealed in the spool next to the results.
        self._exchange = exchange
        self._max_job_bytes = max_job_bytes
        self._spool = results_dir.parent / "spool" / "client"
        self._identity = identity
        self._records = records
        self._modules = modules or ModuleCatalog()
        self._disputes = disputes  # mediation; None: bad outputs are only rejected
        self._store = store
        self._chains = chains
        self._book = book
        self._publish = publish
        self._request = request
        self._node_record = node_record
        self._mediators = tuple(to_checksum_address(m) for m in mediators)
        self._results_dir = results_dir
        self._clock_ms = clock_ms
        self._timeouts = timeouts
        self._acceptance_window_s = acceptance_window_s
        self._candidates: dict[str, list[str]] = {}  # job offer CID -> resource offer CIDs
        self._seen_matchings: set[str] = set()
        self._wakeups: dict[str, trio.Event] = {}
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
                event(log, "deal.resumed", key=stored.record.key, phase=stored.record.phase)
                if stored.record.phase is Phase.OFFERED:
                    self._restore_job_offer(stored)
                nursery.start_soon(self._drive, stored.record.key)
            task_status.started()
            await trio.sleep_forever()

    async def submit(self, job: JobSubmission) -> str:
        """Post `job`; returns its deal key (the job offer's CID).

        Raises:
            SubmissionError: bad parameters, no mediator configured, or not enough deposit.
        """
        if self._nursery is None:
            raise SubmissionError("the client role is not running")
        try:
            module_id, module = self._modules.resolve(job.module)
        except UnknownModule as exc:
            raise SubmissionError(str(exc)) from exc
        deadline_s = job_deadline_s(module, job.deadline_s)
        files: dict[str, FileSource] = {**job.files, **job.file_paths}
        try:
            params = module.resolve_params(job.params)
            check_job_size(await trio.to_thread.run_sync(inputs_stream_size, files, params),
                           self._max_job_bytes)
        except LilypadError as exc:
            raise SubmissionError(str(exc)) from exc
        try:
            chain = self._chains.require(job.chain_id)
        except UnknownChain as exc:
            raise SubmissionError(str(exc)) from exc
        free = await chain.free_balance()
        if free < job.max_price_wei:
            raise SubmissionError(
                f"free deposit {free} wei on chain {chain.chain_id} is below the job's max price "
                f"{job.max_price_wei} wei: run `lilypad-p2p deposit <amount>` first"
            )
        records = self._records or ClientRecords(RecordFeed(), RecordPolicy())
        policy = records.policy.overridden(job.min_completed_deals, job.slash_free_blocks)
        # The head is a chain round trip: read only for a job whose offer names a block.
        asks = (records.offer_fields(policy, await chain.head_block())
                if policy.counts_records else {})
        now = self._clock_ms()
        resources = module.resources
        offer = wire.JobOffer(
            market=job.market,
            job_creator=self._identity.address,
            module=module_id,
            image=module.image,
            spec=wire.ResourceSpec(
                milli_cpu=resources.milli_cpu,
                ram_mb=-(-resources.memory_bytes // MIB),
                disk_mb=-(-resources.disk_bytes // MIB),
                gpu_count=resources.gpu_count,
                gpu_vram_mb=resources.gpu_vram_mb,
            ),
            max_price_wei=job.max_price_wei,
            trusted_mediators=self._mediators,
            deadline=now + deadline_s * 1000,
            target_provider=_provider_address(job.target) if job.target else None,
            chain_id=chain.chain_id,
            check_rate_ppm=self._disputes.settings.check_rate_ppm if self._disputes else 0,
            records_block=asks.get("records_block", 0),
            min_completed_deals=asks.get("min_completed_deals", 0),
            slash_free_blocks=asks.get("slash_free_blocks", 0),
            created_at=now,
            expires_at=now + min(max(self._timeouts.match_ms, JOB_OFFER_LIFETIME_MS),
                                 deadline_s * 1000),
            nonce=secrets.randbits(63),
        )
        envelope = self._identity.sign_envelope(offer, now)
        # Spooled sealed to ourselves: the disk never holds the inputs in the clear.
        self._spool.mkdir(mode=0o700, parents=True, exist_ok=True)
        spool = self._spool / f"{offer.cid}.inputs"
        try:
            await trio.to_thread.run_sync(write_spool, spool, self._identity.sealing_public_key,
                                          spool_context(offer.cid), files, params)
        except (LilypadError, OSError) as exc:
            raise SubmissionError(f"inputs: {exc}") from exc
        record = new_client_deal(offer.cid, now_ms=now, expires_ms=offer.expires_at)
        self._store.insert(record, ClientDetail(job_offer=envelope.encode(), module=module_id,
                                                submitted_ms=now, module_name=module.name,
                                                inputs_spool=str(spool), salt=job.salt),
                          chain_id=chain.chain_id)
        if offer.target_provider is None:
            await self._publish(offer)
        event(log, "job.submitted", key=offer.cid, module=module_id,
              target=offer.target_provider, chain_id=chain.chain_id)
        self._nursery.start_soon(self._drive, offer.cid)
        return offer.cid

    def observe_proposal(self, envelope: wire.SignedEnvelope) -> None:
        """Note the matches naming our job offers (the first valid one per job wins)."""
        proposal = envelope.body
        if not isinstance(proposal, wire.MatchProposal):
            return
        if proposal.matching_id in self._seen_matchings:
            return  # another solver's copy of a matching we already took note of
        self._seen_matchings.add(proposal.matching_id)
        for job_cid, resource_cid in proposal.matches:
            stored = self._store.get(job_cid)
            if stored is None or stored.record.side is not Side.CLIENT:
                continue
            self._candidates.setdefault(job_cid, []).append(resource_cid)
            self._wake(job_cid)

    # --- the driver ---------------------------------------------------------------------

    async def _drive(self, key: str) -> None:
        while True:
            stored = self._store.client_deal(key)
            assert stored is not None
            if stored.record.phase.is_final:
                self._wakeups.pop(key, None)
                self._candidates.pop(key, None)
                discard(self._spool / f"{key}.inputs")
                event(log, "deal.finished", key=key, phase=stored.record.phase)
                return
            try:
                await self._step(stored)
            except (ChainError, NetError, PeerMisbehaved, trio.TooSlowError, StoreUnavailable,
                    OSError) as exc:
                # Transient (chain, network, a full disk) or the provider's fault: try again
                # shortly; every phase has a timeout that ends the deal if this never recovers.
                event(log, "deal.retry", logging.WARNING, key=key, phase=stored.record.phase,
                      error=repr(exc))
                await trio.sleep(RETRY_INTERVAL_S)

    async def _step(self, stored: ClientDeal) -> None:
        record = stored.record
        due = due_timeout(record, self._timeouts)
        if due is not None and self._clock_ms() >= due.at_ms:
            await self._on_timeout(stored, due.event)
            return
        handler = {
            Phase.OFFERED: self._find_match,
            Phase.MATCHED: self._propose,
            Phase.AGREED: self._open,
            Phase.OPEN: self._run_job,
            Phase.RUNNING: self._run_job,
            Phase.ACCEPTED: self._deliver_acceptance,
            Phase.DISPUTED: self._mediate,
        }[record.phase]
        await handler(stored)

    def _save(self, stored: ClientDeal, event_: Event, **detail: Any) -> ClientDeal:
        deadline = detail.pop("result_deadline_ms", None)
        record = advance(stored.record, event_, self._clock_ms(), result_deadline_ms=deadline)
        merged = replace(stored.detail, **detail)
        self._store.update(record, merged, event_)
        event(log, "deal.transition", key=record.key, phase=record.phase, on=event_)
        return replace(stored, record=record, detail=merged)

    def _update(self, stored: ClientDeal, **detail: Any) -> None:
        self._store.update(stored.record, replace(stored.detail, **detail))

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

    # offered -> matched

    def _restore_job_offer(self, stored: ClientDeal) -> None:
        """Put a resumed, unmatched job offer back into our (empty) offer book, freshly signed.

        Peers may never have heard it (we had none when we posted it, or they dropped it); offer
        sync serves the book to every peer that connects to us, so the solvers see it again
        before its match timeout. (The network is not up yet: nothing to publish to.)
        """
        job = self._job_offer(stored)
        if job.target_provider is None:  # targeted offers are never gossiped
            now = self._clock_ms()
            self._book.add(self._identity.sign_envelope(job, now), now)

    def _job_offer(self, stored: ClientDeal) -> wire.JobOffer:
        envelope = wire.SignedEnvelope.from_wire(wire.decode(stored.detail.job_offer))
        assert isinstance(envelope.body, wire.JobOffer)
        return envelope.body

    def _usable_offer(
        self, job: wire.JobOffer, resource_cid: str, refused: dict[str, int]
    ) -> wire.ResourceOffer | None:
        if refused.get(resource_cid, 0) > self._clock_ms():
            return None
        envelope = self._book.get(resource_cid)
        if envelope is None or not isinstance(envelope.body, wire.ResourceOffer):
            return None
        resource = envelope.body
        # A job naming a records block: the proposed provider's record is checked here too.
        records = self._records.view(job) if self._records else None
        reason = mismatch(job, resource, self._clock_ms(), records=records)
        if reason is not None:
            event(log, "match.skipped", logging.DEBUG, job=job.cid, offer=resource_cid,
                  reason=reason)
            return None
        return resource

    async def _find_match(self, stored: ClientDeal) -> None:
        job = self._job_offer(stored)
        refused = stored.detail.refused
        if job.target_provider is not None:
            candidates = [
                e.body.cid for e in self._book.offers(job.market, wire.ResourceOffer)
                if isinstance(e.body, wire.ResourceOffer)
                and e.body.provider == job.target_provider
            ]
        else:
            candidates = self._candidates.get(job.cid, [])
            if refused:
                candidates = [*candidates, *self._fallback_offers(job)]
        for resource_cid in candidates:
            resource = self._usable_offer(job, resource_cid, refused)
            if resource is None:
                continue
            try:
                deal = build_deal(job, resource,
                                  salt=stored.detail.salt or secrets.token_bytes(32),
                                  acceptance_window_s=self._acceptance_window_s,
                                  **(self._disputes.deal_terms() if self._disputes else {}))
            except NoMediators:
                continue
            if not self._mediators and not await self._all_registered(stored, deal.mediators):
                continue
            signature = self._chain(stored).sign_deal(deal)
            self._save(stored, Event.MATCH_FOUND, resource_offer=resource_cid,
                       deal=deal, job_creator_signature=signature,
                       result_deadline_ms=deal.result_deadline * 1000,
                       matched_ms=self._clock_ms())
            return
        await self._wait(job.cid, min(self._until_due_s(stored.record), RETRY_INTERVAL_S))

    async def _all_registered(self, stored: ClientDeal, mediators: tuple[str, ...]) -> bool:
        """A client with no mediators of its own (its job offers name none) takes those its
        provider trusts, but only mediators registered and active on the deal's chain."""
        chain = self._chain(stored)
        for address in mediators:
            stake, exit_ready_at = await trio.to_thread.run_sync(chain.sync.mediator, address)
            if stake == 0 or exit_ready_at:
                event(log, "deal.mediator_unregistered", key=stored.record.key, mediator=address)
                return False
        return True

    def _give_up_match(self, stored: ClientDeal, why: str) -> None:
        """Back to offered: nothing is signed by the provider yet, so the job is not lost,
        only this match; the offer sits out UNANSWERED_BACKOFF_MS."""
        offer = required(stored.detail.resource_offer, "resource offer")
        event(log, "deal.unanswered", logging.WARNING, key=stored.record.key, offer=offer,
              error=why)
        until = self._clock_ms() + UNANSWERED_BACKOFF_MS
        refused = {**stored.detail.refused, offer: until}
        self._save(stored, Event.REFUSED, refused=refused, refusal=why)

    def _fallback_offers(self, job: wire.JobOffer) -> list[str]:
        """After a failed match, the offers in our own book, cheapest first; equal prices in an
        order drawn from the job, so clients' fallbacks do not all pile onto the oldest offer.

        The solvers' holds keep a failed pair out of their next epochs only for a while, after
        which they may propose the same provider again; a job whose provider did not answer
        would wait for a match it skips. So, once a match has failed, the client also tries
        the offers it holds itself (each still vetted by `_usable_offer` and, in the end, by
        the provider's own checks), as `--target` would, instead of letting the job lapse.
        """
        offers = [e.body for e in self._book.offers(job.market, wire.ResourceOffer)
                  if isinstance(e.body, wire.ResourceOffer)]
        offers.sort(key=lambda offer: (
            offer.price_per_job_wei, hashlib.sha256(f"{job.cid}/{offer.cid}".encode()).digest()
        ))
        return [offer.cid for offer in offers]

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
                answer = await self._request(record.peer_id, DEAL_PROTOCOL, proposal,
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
        assert isinstance(answer, wire.DealCountersigned)
        chain.check_deal_signature(deal, answer.provider_signature, deal.provider)
        self._save(stored, Event.COUNTERSIGNED, provider_signature=answer.provider_signature,
                   provider_record=wire.encode(record.to_wire()), agreed_ms=self._clock_ms(),
                   deal_id=chain.deal_id(deal))
        await self._withdraw_offer(self._job_offer(stored))

    async def _withdraw_offer(self, job: wire.JobOffer) -> None:
        """Cancel the job offer once it has a deal, so solvers stop matching it."""
        if job.target_provider is not None:
            return  # never published
        cancel = wire.Cancel(market=job.market, offer_cid=job.cid, owner=job.job_creator,
                             created_at=self._clock_ms(), nonce=secrets.randbits(63))
        try:
            await self._publish(cancel)
        except NetError as exc:  # the offer expires anyway; solvers' holds cover the gap
            event(log, "offer.cancel_failed", logging.WARNING, offer=job.cid, error=repr(exc))

    # agreed -> open

    async def _open(self, stored: ClientDeal) -> None:
        detail = stored.detail
        try:
            move = await self._chain(stored).open_deal(
                required(detail.deal, "deal"),
                required(detail.job_creator_signature, "job creator's signature"),
                required(detail.provider_signature, "provider's signature"),
            )
        except InsufficientFunds as exc:
            self._save(stored, Event.CANCEL, error=f"not enough deposit to open the deal: {exc}")
            return
        if move.status is not DealStatus.OPEN:
            event(log, "deal.open_found", logging.WARNING, key=stored.record.key,
                  status=move.status.name)
        self._save(stored, Event.OPENED, opened_ms=self._clock_ms())

    # open/running -> accepted | rejected

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
        record = self._provider_record(stored, deal.provider)
        if record is None:
            await self._wait(stored.record.key, RETRY_INTERVAL_S)
            return
        if stored.record.phase is Phase.OPEN:
            stored = self._save(stored, Event.INPUTS_DELIVERED)
        deal_id = chain.deal_id(deal)
        inputs = SpooledInputs(inputs_spool(stored.detail.inputs_spool),
                               self._identity.sealing_private_key(),
                               spool_context(stored.record.key)).resealed(
            record.sealing_public_key, inputs_context(deal_id))
        request = wire.JobRequest(
            chain_id=chain.chain_id, deal=wire.deal_to_wire(deal), module=stored.detail.module,
            inputs_preamble=inputs.preamble, inputs_bytes=inputs.size,
            output_recipient=self._identity.sealing_public_key,
        )
        result = self._results_dir / f"{stored.record.key}.tar"
        assert self._exchange is not None
        with trio.move_on_after(self._until_due_s(stored.record)):
            answer, delivery = await self._exchange(
                record.peer_id, JOB_PROTOCOL, request, inputs=inputs.chunks,
                on_answer=ResultReceiver(deal_id, lambda h, s: chain.check_commitment(deal, h, s),
                                         self._identity.sealing_private_key(), result,
                                         self._max_job_bytes, deal.provider),
                addrs=record.listen_addrs)
            if isinstance(answer, wire.DealRefused):
                self._update(stored, last_refusal=answer.reason)
                event(log, "job.refused", logging.WARNING, key=stored.record.key,
                      reason=answer.reason)
                await trio.sleep(RETRY_INTERVAL_S)
                return
            assert isinstance(answer, wire.JobResultMessage)
            await self._check_result(stored, deal, answer, delivery)

    async def _check_result(
        self, stored: ClientDeal, deal: Any, answer: wire.JobResultMessage,
        delivery: Delivery | None,
    ) -> None:
        """`delivery` is what matched the commitment (checked as it arrived), if anything."""
        chain = self._chain(stored)
        if delivery is None:
            # The provider signed a hash its delivery does not have: evidence for mediation.
            invalid = Event.DISPUTE if self._disputes else Event.RESULT_INVALID
            self._save(stored, invalid, result_hash=answer.result_hash,
                       provider_commitment=answer.provider_signature,
                       error="the delivery does not match the committed result hash")
            return
        path = delivery.path
        if path.stat().st_size <= MAX_STORED_RESULT_BYTES:  # for the chain bridge
            self._store.put_result_file(stored.record.key, path)
        shown: dict[str, Any] = {"result_cid": cid_of_digest(answer.result_hash)}
        if delivery.failure is not None:  # the provider's signed report of the job's failure
            path, shown = keep_failure(self._results_dir, stored.record.key, delivery.failure,
                                       path)
            event(log, "job.failed_in_job", key=stored.record.key, **shown)
        if self._disputes is not None and self._disputes.spot_check():
            self._save(stored, Event.DISPUTE, result_hash=answer.result_hash,
                       provider_commitment=answer.provider_signature,
                       result_path=str(path), result_ms=self._clock_ms(), spot_check=True,
                       **shown)
            return
        acceptance = chain.sign_acceptance(deal, answer.result_hash)
        self._save(stored, Event.RESULT_VERIFIED, result_hash=answer.result_hash,
                   provider_commitment=answer.provider_signature,
                   acceptance_signature=acceptance, result_path=str(path),
                   result_ms=self._clock_ms(), **shown)

    # accepted -> settled

    async def _deliver_acceptance(self, stored: ClientDeal) -> None:
        chain = self._chain(stored)
        deal = required(stored.detail.deal, "deal")
        status = await chain.status(deal)
        if status is DealStatus.SETTLED:
            self._save(stored, Event.SETTLED, settled_ms=self._clock_ms())
            return
        if not stored.detail.acceptance_delivered:
            record = self._provider_record(stored, deal.provider)
            if record is not None:
                notice = wire.AcceptanceNotice(
                    chain_id=chain.chain_id,
                    deal_id=chain.deal_id(deal),
                    result_hash=required(stored.detail.result_hash, "result hash"),
                    job_creator_signature=required(stored.detail.acceptance_signature,
                                                   "acceptance"),
                )
                with trio.fail_after(ACCEPTANCE_REQUEST_TIMEOUT_S):
                    answer = await self._request(record.peer_id, RESULT_PROTOCOL, notice,
                                                 addrs=record.listen_addrs)
                if isinstance(answer, wire.AcceptanceAck):
                    self._update(stored, acceptance_delivered=True)
                    return
        await trio.sleep(min(CHAIN_POLL_INTERVAL_S, self._until_due_s(stored.record)))

    # disputed -> resolved

    async def _mediate(self, stored: ClientDeal) -> None:
        assert self._disputes is not None, "a deal is disputed only with mediation set up"
        ended = await self._disputes.step(stored)
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
            # It may have been opened before we crashed: look before cancelling.
            deal = required(stored.detail.deal, "deal")
            if await chain.status(deal) is not DealStatus.NONE:
                self._save(stored, Event.OPENED)
                return
        if then is Event.TIMEOUT_CLAIMED:
            deal = required(stored.detail.deal, "deal")
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
        self._save(stored, then, error=f"{record.phase} timed out")
        if record.phase is Phase.OFFERED:  # the offer may outlive our wait: solvers drop it
            await self._withdraw_offer(self._job_offer(stored))

    # --- control ------------------------------------------------------------------------

    def control_handlers(self) -> dict[str, Callable[[dict[str, Any]], Awaitable[object]]]:
        return {"submit": self._control_submit, "deal": self._control_deal,
                "dispute": self._control_dispute}

    async def _control_dispute(self, params: dict[str, Any]) -> dict[str, Any]:
        """`lilypad-p2p dispute <key>`: send a deal with a committed result to mediation."""
        stored = self._store.client_deal(str(params.get("key", "")))
        if stored is None:
            raise LilypadError(f"no client deal {params.get('key')!r}")
        if self._disputes is None or self._nursery is None:
            raise LilypadError("this client has no mediation set up")
        if stored.record.phase is not Phase.ACCEPTED:
            raise LilypadError(f"deal is {stored.record.phase}: only a deal with a verified, "
                               "not yet settled result can be disputed")
        deal = required(stored.detail.deal, "deal")
        if await self._chain(stored).status(deal) is DealStatus.SETTLED:
            raise LilypadError("the deal is already settled on chain")
        self._save(stored, Event.DISPUTE, disputed_by_user=True)
        self._wake(stored.record.key)
        saved = self._store.get(stored.record.key)
        assert saved is not None  # saved just above
        return describe(saved, self._store)

    async def _control_submit(self, params: dict[str, Any]) -> dict[str, Any]:
        files = {name: base64.b64decode(data) for name, data in params.get("files", {}).items()}
        try:
            paths = await trio.to_thread.run_sync(check_input_files,
                                                  dict(params.get("file_paths", {})))
        except InputFileError as exc:
            raise SubmissionError(str(exc)) from exc
        job = JobSubmission(
            module=str(params["module"]),
            params=dict(params.get("params", {})),
            files=files, file_paths=paths,
            max_price_wei=int(params.get("max_price_wei", DEFAULT_MAX_PRICE_WEI)),
            target=params.get("target"),
            deadline_s=_optional_int(params.get("deadline_s")),
            market=str(params.get("market", "cpu")),
            chain_id=None if params.get("chain_id") is None else int(params["chain_id"]),
            min_completed_deals=_optional_int(params.get("min_completed_deals")),
            slash_free_blocks=_optional_int(params.get("slash_free_blocks")),
        )
        return {"key": await self.submit(job)}

    async def _control_deal(self, params: dict[str, Any]) -> dict[str, Any]:
        stored = self._store.get(str(params.get("key", "")))
        if stored is None:
            raise LilypadError(f"no deal {params.get('key')!r}")
        return describe(stored, self._store)


class ResultMismatch(PeerMisbehaved):
    """The provider's answer does not belong to the deal it was asked about."""


def describe(stored: StoredDeal[DealDetail], store: DealStore) -> dict[str, Any]:
    """A deal as the control interface shows it (no secrets, no inputs)."""
    detail = stored.detail
    client = detail if isinstance(detail, ClientDetail) else None
    deal = detail.deal
    shown: dict[str, Any] = {
        **dataclasses.asdict(stored.record),
        "chain_id": stored.chain_id,
        # Shown by name (shipped modules, and the client's own); `module_id` is the ID.
        "module": (client.module_name if client else None) or BUILTIN_NAMES.get(detail.module,
                                                                               detail.module),
        "module_id": detail.module,
        "provider": deal.provider if deal else None,
        "job_creator": deal.job_creator if deal else None,
        "payment_wei": deal.payment if deal else None,
        "deal_id": (
            "0x" + stored.record.key if client is None
            else "0x" + client.deal_id.hex() if client.deal_id is not None else None
        ),
        "result_cid": detail.result_cid,
        "result_path": client.result_path if client else None,
        # A failure result (roles/_failure.py): the claimed class, e.g. "out_of_memory".
        "failure": detail.failure,
        "outcome": detail.outcome,  # a mediation's verdict
        "check_outcome": client.check_outcome if client else None,  # a check that agreed
        "error": detail.error or (client.refusal or client.last_refusal if client else None),
        "transitions": [
            {"from": t.from_phase, "to": t.to_phase, "event": t.event, "at_ms": t.at_ms}
            for t in store.transitions(stored.record.key)
        ],
    }
    return shown
