"""The chain bridge (`--chain-bridge`): serves on-chain job requests with the client role.

    bridge = BridgeRole(requests=..., client=client_role, store=store, state_path=...,
                        confirmations=12)
    await nursery.start(bridge.run)

Each poll it reads LilypadRequests' JobRequested events and moves every confirmed request it
can serve one step (the contract, not the bridge, decides what the requester's trust allows):
- open: if the module and parameters are ones we can run, there is time before the deadline,
  and at least k of the request's mediators are ones we trust (`claim_refusal`: they rule on
  our result and our bond), `claim` it with the request's bond first (only the claimant is
  ever paid, so we never fund a deal someone faster could be reimbursed for; a lost race
  costs a reverted claim, no deal), then submit it as a job whose deal salt is the request
  id (the binding the contract checks); with too little free deposit to fund the job (the
  max prices of our claimed requests whose deals have not locked their payment yet count as
  spent: `ClaimedRequests`), neither claimed nor dropped (logged once) until the deposit is
  topped up or the deadline nears, and meanwhile read no more (one read of the deposit per
  poll serves all such requests);
- claimed by us, our deal settled (or resolved with the provider paid): `postResult` the output
  tarball's sha256 with the deal, before the deadline; a deal that ended without a result is
  submitted again while there is time, as is one whose submission found too little deposit;
- posted by us: once final (attested: k of the request's mediators voted our hash; optimistic:
  the challenge window passed unchallenged, or the consortium upheld it) `deliver` the tarball
  (an output over 1 KiB reaches the callback as its CID; a tarball too large for calldata is
  delivered by CID, which only the claimant may choose); the contract reimburses our deal's
  payment and returns the bond;
- posted by us and left unruled by the consortium past the contract's RULING_WINDOW: `refund`
  it, which returns our bond (our deal's payment is lost, as it is to anyone's refund from then
  on);
- overturned (open again after our post), delivered or refunded: done;
- claimed by another bridge: set aside, with no chain call per poll, until its deadline; if
  the consortium overturns that bridge's result (a `Ruled` event, not upheld: open again), it
  is served as any open request (they hold the saved cursor back like pending ones, so a
  restarted bridge reads them again);
- dead to us, dropped with one log line: open with too little time left to claim and post
  (the contract refuses both after the deadline), claimed by us past the deadline (only a
  refund, which forfeits our bond, can follow), refused by us (module, parameters, trust,
  submission), or ours to deliver with no output to deliver.

Reorgs: a request is acted on only once `confirmations` blocks are mined on top of its block
(`plan_scan`); one that a deeper reorg removes has no on-chain record any more and is dropped
(request ids bind their contents, so a replacement request at the same position has another id).
Restarts: the request's on-chain record says whether we claimed or posted it, and which jobs were
submitted is read from the deal store (a client deal's salt is its request id), so a restart
never submits or claims twice. The cursor saved in `state_path` (JSON) never passes a live or
unconfirmed request, so a restart loses none; while running, each poll reads only from
REORG_DEPTH_BLOCKS below the last confirmed block read, so a request that stays live for days
does not widen every poll's `eth_getLogs` range. A dropped request is not taken up again when
its block is read again.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from lilypad_p2p.blocking import run_blocking
from lilypad_p2p.chain import (
    ContractRevert,
    JobRequest,
    Outcome,
    RequestedJob,
    RequestsClient,
    RequestStatus,
    SettlementClient,
    deployment_block,
)
from lilypad_p2p.deal_detail import required
from lilypad_p2p.errors import ConfigError, LilypadError
from lilypad_p2p.exec import BUILTIN_MODULES
from lilypad_p2p.logs import event
from lilypad_p2p.market import Phase
from lilypad_p2p.roles._bridge_stakes import ClaimedRequests, claim_refusal
from lilypad_p2p.roles._client import ClientRole
from lilypad_p2p.roles._client_submission import (
    JobSubmission,
    SubmissionDeferred,
    SubmissionError,
    check_funds,
    job_deadline_s,
)
from lilypad_p2p.roles._request_life import past_deadline, ruling_lapsed
from lilypad_p2p.roles._request_polling import (
    ScanPlan,
    SetAside,
    next_cursor,
    plan_scan,
    poll_chain,
    request_params,
)
from lilypad_p2p.store import ClientDeal, DealStore

log = logging.getLogger("lilypad_p2p.bridge")

# How often the bridge looks at the chain for new requests and ended deals.
BRIDGE_POLL_INTERVAL_S = 1.0
# Blocks mined on top of a request before the bridge acts on it (config `bridge_confirmations`).
# 12 suits Ethereum-like chains; a dev chain that mines only on demand (anvil) needs 0.
DEFAULT_CONFIRMATIONS = 12
# A job must have its result this long before the request's deadline, to post it in time.
DELIVERY_MARGIN_S = 30
# Requests claimed by other bridges, kept (as their block and deadline) to serve if their
# result is overturned; the oldest go first beyond this.
MAX_PARKED_REQUESTS = 16_384
# Larger output tarballs are delivered by `deliverCid` (ours to call) instead of as calldata:
# 64 KiB of calldata costs up to ~1M gas.
MAX_TARBALL_CALLDATA_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class BridgeStatistics:
    submitted: int
    delivered: int
    overturned: int
    failed_submissions: int


class BridgeRole:
    def __init__(
        self,
        *,
        requests: RequestsClient,
        client: ClientRole,
        store: DealStore,
        state_path: Path,
        confirmations: int = DEFAULT_CONFIRMATIONS,
        trusted_mediators: Iterable[str] = (),
    ) -> None:
        if confirmations < 0:
            raise ConfigError("bridge confirmations must be >= 0")
        self._requests = requests
        self._client = client
        self._store = store
        self._state_path = state_path
        self._confirmations = confirmations
        self._settlement: SettlementClient | None = None
        self._pending: dict[bytes, RequestedJob] = {}
        # Requests dropped for good (done, or dead to us).
        self._dropped = SetAside()
        # Requests another bridge claimed, by their block and deadline (`_park`); the saved
        # cursor stays at or below the oldest.
        self._others: dict[bytes, tuple[int, int]] = {}
        # First block not yet read as confirmed; None until read from `state_path`.
        self._scan_next: int | None = None
        # Our deals' keys per pending request, and the store's change mark they are up to date
        # with (None: before the first poll).
        self._keys_by_request: dict[bytes, set[str]] = {}
        self._store_mark: int | None = None
        self._unconfirmed_seen: set[bytes] = set()  # this poll's, logged once each
        self._deferred: set[bytes] = set()  # pending requests we wait to fund, logged once each
        self._claims = ClaimedRequests()
        # This poll's: each pending request's deals, and the free deposit (read once, if asked).
        self._poll_deals: dict[bytes, list[ClientDeal]] = {}
        self._poll_unpromised_wei: int | None = None
        self._address = requests.account.address if requests.account else ""
        self._trusted = frozenset(m.lower() for m in trusted_mediators)
        self._refusals = 0
        self._submitted = 0
        self._delivered = 0
        self._overturned = 0

    def statistics(self) -> BridgeStatistics:
        return BridgeStatistics(self._submitted, self._delivered, self._overturned,
                                self._refusals)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await poll_chain(self.poll_once, log, "bridge", BRIDGE_POLL_INTERVAL_S)

    async def poll_once(self) -> None:
        latest = await run_blocking(self._requests.chain.block_number)
        if self._scan_next is None:
            self._scan_next = await run_blocking(self._scan_from)
        plan = plan_scan(self._scan_next, latest, self._confirmations)
        found: list[RequestedJob] = []
        overturned: list[bytes] = []
        if plan.from_block <= plan.to_block:
            found = await run_blocking(self._requests.requested_between, plan.from_block,
                                       plan.to_block)
            if self._others:  # a ruling just after one is set aside is in the next margin
                overturned = await run_blocking(self._requests.overturned_between,
                                                plan.from_block, plan.to_block)
        self._take_up(found, plan)
        self._scan_next = next_cursor((), plan)
        now = await run_blocking(self._requests.chain.now)
        await self._take_back(overturned, now)
        deals = self._poll_deals = await self._deals_by_request()
        self._poll_unpromised_wei = None
        for request_id, requested in list(self._pending.items()):
            if await self._waits_for_deposit(requested, now):
                continue
            await self._serve(requested, deals.get(request_id, []), now)
        # Those set aside too: a restarted bridge reads them again, to set them aside again.
        live = [r.block_number for r in self._pending.values()]
        cursor = next_cursor([*live, *(block for block, _ in self._others.values())], plan)
        self._save_state(cursor, latest)

    def _take_up(self, found: list[RequestedJob], plan: ScanPlan) -> None:
        """The confirmed requests among `found` become pending (unless dropped already)."""
        unconfirmed: set[bytes] = set()
        for requested in found:
            request_id = requested.request_id
            if not plan.confirmed(requested):
                unconfirmed.add(request_id)
                if request_id not in self._unconfirmed_seen:
                    event(log, "bridge.awaiting_confirmations", request="0x" + request_id.hex(),
                          block=requested.block_number, confirmations=self._confirmations)
            elif requested not in self._dropped:
                self._pending[request_id] = requested  # a reorg may have moved it
        # Unconfirmed requests lie above the confirmed head, so every poll reads them again
        # until they are confirmed; one a reorg removed is not read again and leaves the set.
        self._unconfirmed_seen = unconfirmed
        self._dropped.trim(plan)

    async def _take_back(self, overturned: list[bytes], now: int) -> None:
        """Requests another bridge claimed whose result the consortium overturned are open
        again: pending once more, read again from their block. Those past their deadline
        are forgotten."""
        for request_id in overturned:
            block, _ = self._others.pop(request_id, (None, 0))
            if block is None:
                continue
            for requested in await run_blocking(self._requests.requested_between, block, block):
                if requested.request_id == request_id:
                    event(log, "bridge.request_reopened", request="0x" + request_id.hex())
                    self._pending[request_id] = requested
        self._others = {request_id: (block, deadline)
                        for request_id, (block, deadline) in self._others.items()
                        if deadline - now - DELIVERY_MARGIN_S > 0}

    async def _serve(self, requested: RequestedJob, deals: list[ClientDeal], now: int) -> None:
        request_id = requested.request_id
        request = await run_blocking(self._requests.request, request_id)
        ours = request.claimant == self._address
        status = request.status
        if status is RequestStatus.NONE:
            event(log, "bridge.request_gone", logging.WARNING,
                  request="0x" + request_id.hex(), reason="reorged out of the chain")
            # Not `_drop`: the same request may be mined again, and our deals are still its.
            self._pending.pop(request_id, None)
            self._claims.forget(request_id)
        elif status is RequestStatus.OPEN:
            if any(_paid(stored) for stored in deals):  # our posted result was overturned
                event(log, "bridge.overturned", logging.WARNING, request="0x" + request_id.hex())
                self._overturned += 1
                self._drop(requested)
            elif _time_left_s(requested, now) <= 0:
                event(log, "bridge.request_expired", request="0x" + request_id.hex(),
                      deadline=request.deadline)
                self._drop(requested)
            else:
                await self._claim_and_submit(requested, request, deals, now)
        elif status.is_final:
            self._drop(requested)
        elif not ours:
            self._park(requested)
        elif status is RequestStatus.CLAIMED:
            if past_deadline(request, now):
                event(log, "bridge.claim_expired", logging.WARNING,
                      request="0x" + request_id.hex(), deadline=request.deadline,
                      forfeits_bond_wei=request.bond)
                self._drop(requested)
            else:
                self._claims.claimed(request_id, requested.max_price)
                await self._post_or_resubmit(requested, deals, now)
        elif ruling_lapsed(request, now):
            await self._refund(requested)
        else:
            final_at = request.final_at()
            if final_at is not None and (status is RequestStatus.UPHELD or now > final_at):
                await self._deliver(requested, deals)

    async def _claim_and_submit(self, requested: RequestedJob, request: JobRequest,
                                deals: list[ClientDeal], now: int) -> None:
        """Claim (the bond is all a lost race could cost), then fund the deal."""
        request_id = requested.request_id
        refusal = claim_refusal(requested, request, self._trusted)
        if refusal is not None:
            self._refuse(requested, refusal)
            return
        job = self._job_for(requested, now)
        if job is None:
            return
        try:  # checked before the claim puts the bond at stake, as the submission will
            await self._check_funds(requested, job)
        except SubmissionDeferred as exc:
            self._defer(requested, f"{exc}; unclaimed until then, open to other bridges")
            return
        try:
            receipt = await run_blocking(self._requests.claim, request_id, request.bond)
        except ContractRevert as exc:
            self._refusal(requested, exc)
            return
        event(log, "bridge.claimed", request="0x" + request_id.hex(), bond_wei=request.bond,
              gas=receipt.gas_used)
        self._claims.claimed(request_id, requested.max_price)
        self._deferred.discard(request_id)
        if not any(not d.record.phase.is_final for d in deals):
            await self._submit(requested, job)

    def _job_for(self, requested: RequestedJob, now: int) -> JobSubmission | None:
        """The job serving the request, or None (refused for good and dropped, or too late to
        post)."""
        left_s = _time_left_s(requested, now)
        if left_s <= 0:
            return None  # too late to post in time; the requester takes a refund
        try:
            module = BUILTIN_MODULES.get(requested.module)
            if module is None:
                raise ValueError(f"module {requested.module!r} is not one this bridge serves "
                                 f"({', '.join(sorted(BUILTIN_MODULES))})")
            deadline_s = job_deadline_s(module, min(job_deadline_s(module, None), left_s))
            job = JobSubmission(module=requested.module,
                                params=request_params(requested.inputs),
                                max_price_wei=requested.max_price, deadline_s=deadline_s,
                                salt=requested.request_id, chain_id=self._requests.chain.chain_id)
            # Parameters are checked here, before the claim puts the bond at stake.
            module.resolve_params(job.params)
            return job
        except (LilypadError, ValueError) as exc:
            self._refuse(requested, str(exc))
            return None

    async def _submit(self, requested: RequestedJob, job: JobSubmission) -> None:
        try:
            await self._check_funds(requested, job)
            key = await self._client.submit(job)
        except SubmissionDeferred as exc:  # claimed: tried again each poll until the deadline
            self._defer(requested, str(exc))
            return
        except SubmissionError as exc:
            self._refuse(requested, str(exc))
            return
        self._deferred.discard(requested.request_id)
        self._submitted += 1
        event(log, "bridge.request_submitted", request="0x" + requested.request_id.hex(),
              key=key)

    async def _post_or_resubmit(self, requested: RequestedJob, deals: list[ClientDeal],
                                now: int) -> None:
        for stored in deals:
            if _paid(stored) and await self._provider_paid(stored):
                await self._post(requested, stored)
                return
        if any(not d.record.phase.is_final for d in deals):
            return
        job = self._job_for(requested, now)  # every deal ended without a result: again
        if job is not None:
            await self._submit(requested, job)

    async def _provider_paid(self, stored: ClientDeal) -> bool:
        """Settled deals are; a resolved one unless the verdict was ProviderWrong."""
        if stored.record.phase is Phase.SETTLED:
            return True
        settlement = await self._settlement_client()
        state = await run_blocking(settlement.deal_state, required(stored.detail.deal, "deal"))
        return state.outcome in (Outcome.PROVIDER_CORRECT, Outcome.NON_DETERMINISTIC)

    async def _post(self, requested: RequestedJob, stored: ClientDeal) -> None:
        if deal_output(self._store, stored) is None:
            self._give_up(requested, stored, "no stored output")
            return
        if stored.detail.failure:  # a failure result has no output to post
            self._give_up(requested, stored, f"the job failed: {stored.detail.failure}")
            return
        deal = required(stored.detail.deal, "deal")
        try:
            receipt = await run_blocking(
                self._requests.post_result, requested.request_id, deal,
                required(stored.detail.result_hash, "result hash"))
        except ContractRevert as exc:
            self._refusal(requested, exc)
            return
        event(log, "bridge.posted", request="0x" + requested.request_id.hex(),
              key=stored.record.key, mode=requested.policy.mode.name, gas=receipt.gas_used)

    async def _deliver(self, requested: RequestedJob, deals: list[ClientDeal]) -> None:
        output = next((o for d in deals if _paid(d)
                       if (o := deal_output(self._store, d)) is not None), None)
        if output is None:
            event(log, "bridge.undeliverable", logging.WARNING,
                  request="0x" + requested.request_id.hex(), reason="no stored output")
            self._drop(requested)
            return
        size = len(output) if isinstance(output, bytes) else output.stat().st_size
        by_cid = size > MAX_TARBALL_CALLDATA_BYTES
        if by_cid:
            tarball = b""
        elif isinstance(output, bytes):
            tarball = output
        else:
            tarball = await run_blocking(output.read_bytes)
        try:
            receipt = await run_blocking(
                self._requests.deliver, requested.request_id, tarball)
        except ContractRevert as exc:
            self._refusal(requested, exc)
            return
        delivered = self._requests.delivered(receipt)
        self._delivered += 1
        event(log, "bridge.delivered", request="0x" + requested.request_id.hex(),
              by_cid=delivered["outputIsCid"], callback_ok=delivered["callbackSucceeded"],
              paid=delivered["paid"], gas=receipt.gas_used)
        self._drop(requested)

    async def _refund(self, requested: RequestedJob) -> None:
        """End a request whose consortium left our posted result (or its challenge) unruled:
        the contract then gives our bond back to whoever calls `refund`, and a ruling that comes
        later could be cut short by anyone's refund anyway."""
        request_id = requested.request_id
        try:
            receipt = await run_blocking(self._requests.refund, request_id)
        except ContractRevert as exc:  # ruled or refunded meanwhile: the next poll reads which
            event(log, "bridge.refund_refused", request="0x" + request_id.hex(), error=str(exc))
            return
        event(log, "bridge.refunded", logging.WARNING, request="0x" + request_id.hex(),
              reason="the consortium did not rule", gas=receipt.gas_used)
        self._drop(requested)

    def _refusal(self, requested: RequestedJob, exc: ContractRevert) -> None:
        """The contract refused a claim, post or delivery: the request is lost to us."""
        if exc.error in ("WrongStatus", "DeadlinePassed"):  # another bridge, or too late: fine
            event(log, "bridge.lost_request", request="0x" + requested.request_id.hex(),
                  reason=exc.error)
        else:
            event(log, "bridge.delivery_refused", logging.WARNING,
                  request="0x" + requested.request_id.hex(), error=str(exc))
        self._drop(requested)

    def _refuse(self, requested: RequestedJob, why: str) -> None:
        """We will never serve the request: not claimed, or (claimed) never submitted again."""
        self._refusals += 1
        event(log, "bridge.request_refused", logging.WARNING,
              request="0x" + requested.request_id.hex(), error=why)
        self._drop(requested)

    def _defer(self, requested: RequestedJob, why: str) -> None:
        """Keep the request: what it lacks may come before its deadline (logged once)."""
        if requested.request_id not in self._deferred:
            self._deferred.add(requested.request_id)
            event(log, "bridge.request_deferred", logging.WARNING,
                  request="0x" + requested.request_id.hex(), error=why)

    async def _waits_for_deposit(self, requested: RequestedJob, now: int) -> bool:
        """A request deferred for want of deposit costs no chain call while the deposit is
        still short and there is time: many of them (a requester may post any number above
        our deposit) do not multiply each poll's calls. Its expiry is read as usual."""
        request_id = requested.request_id
        return (request_id in self._deferred and _time_left_s(requested, now) > 0
                and await self._available_wei(request_id)
                < requested.max_price + self._client.mediation_fee_wei)

    async def _check_funds(self, requested: RequestedJob, job: JobSubmission) -> None:
        """Raises SubmissionDeferred unless the deposit covers the job's max price and fee."""
        check_funds(await self._available_wei(requested.request_id), job,
                    self._requests.chain.chain_id, fee_wei=self._client.mediation_fee_wei)

    async def _available_wei(self, request_id: bytes) -> int:
        """The free deposit a request's job may count on (`ClaimedRequests`); the deposit is
        read, and the client's promises summed, at most once a poll, however many requests
        ask (both as of the poll's start, as its map of deals is)."""
        if self._poll_unpromised_wei is None:
            chain_id = self._requests.chain.chain_id
            self._poll_unpromised_wei = (await self._client.free_deposit(chain_id)
                                         - self._client.promised_wei(chain_id))
        return self._claims.available_wei(self._poll_unpromised_wei, self._poll_deals,
                                          request_id, self._client.mediation_fee_wei)

    def _give_up(self, requested: RequestedJob, stored: ClientDeal, why: str) -> None:
        event(log, "bridge.undeliverable", logging.WARNING,
              request="0x" + requested.request_id.hex(), key=stored.record.key, reason=why)
        self._drop(requested)

    def _park(self, requested: RequestedJob) -> None:
        """Another bridge claimed the request: no chain call for it per poll, but taken back
        if the consortium overturns that bridge's result (`_take_back`)."""
        self._drop(requested)
        self._others[requested.request_id] = (requested.block_number, requested.deadline)
        while len(self._others) > MAX_PARKED_REQUESTS:
            del self._others[next(iter(self._others))]

    def _drop(self, requested: RequestedJob) -> None:
        """Forget a request that is done or that nothing we could send would move: it no
        longer costs a chain call per poll nor holds the saved cursor back."""
        request_id = requested.request_id
        self._pending.pop(request_id, None)
        self._keys_by_request.pop(request_id, None)
        self._deferred.discard(request_id)
        self._claims.forget(request_id)
        self._dropped.add(requested)

    async def _settlement_client(self) -> SettlementClient:
        """The settlement contract LilypadRequests reads (read-only)."""
        if self._settlement is None:
            address = await run_blocking(self._requests.settlement_address)
            self._settlement = SettlementClient(self._requests.chain, address)
        return self._settlement

    async def _deals_by_request(self) -> dict[bytes, list[ClientDeal]]:
        """Each pending request's deals (a bridged deal's salt is its request ID), as they are
        now. The keys per request are learned from the deals made since the last poll: a
        bridge that has served thousands of requests does not read them all each second.
        Only pending requests' keys are kept: a deal is made while its request is pending, and
        the first poll, after reading every live request again, finds the deals already made
        for them in a worker thread (at 500,000 deals a read of seconds)."""
        if self._store_mark is None:
            live = set(self._pending)
            changed, self._store_mark = await run_blocking(
                self._store.client_keys_where, lambda detail: detail.get("salt") in live)
        else:
            changed, self._store_mark = self._store.changed_since(self._store_mark)
        for key in changed:
            stored = self._store.client_deal(key)
            salt = None if stored is None else stored.detail.salt
            if salt is not None and salt in self._pending:
                self._keys_by_request.setdefault(salt, set()).add(key)
        by_request: dict[bytes, list[ClientDeal]] = {}
        for request_id in self._pending:
            found = (self._store.client_deal(key)
                     for key in self._keys_by_request.get(request_id, ()))
            deals = sorted((d for d in found if d is not None),
                           key=lambda d: (d.record.created_ms, d.record.key))
            if deals:
                by_request[request_id] = deals
        return by_request

    def _scan_from(self) -> int:
        """The saved cursor; with none (a first start), the block that deployed the contract:
        a bridge on a chain millions of blocks long does not read them from genesis."""
        try:
            return int(json.loads(self._state_path.read_text())["scan_from"])
        except FileNotFoundError:
            return deployment_block(self._requests.chain, self._requests.address)
        except (ValueError, KeyError, TypeError) as exc:
            raise LilypadError(f"{self._state_path} is corrupt: {exc}") from exc

    def _save_state(self, scan_from: int, head: int) -> None:
        """The cursor, and the head last polled (so an observer knows what the bridge saw)."""
        temporary = self._state_path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"scan_from": scan_from, "head": head}))
        os.replace(temporary, self._state_path)


def _time_left_s(requested: RequestedJob, now: int) -> int:
    """Seconds left to run a job for the request and still post its result in time."""
    return requested.deadline - now - DELIVERY_MARGIN_S


def _paid(stored: ClientDeal) -> bool:
    """A deal that ended with a result (settled, or resolved by the mediators)."""
    return stored.record.phase in (Phase.SETTLED, Phase.RESOLVED)


def open_bridge(
    requests_contract: str | None, deal_chain: Any, identity: Any, client: ClientRole | None,
    store: DealStore, home: Path, *, confirmations: int = DEFAULT_CONFIRMATIONS,
    trusted_mediators: Iterable[str] = (),
) -> BridgeRole:
    """The bridge of a node: its settlement chain's LilypadRequests, as the node's account.

    Raises:
        ConfigError: no `[chain] requests` address, or the client role is not running.
    """
    if requests_contract is None or client is None:
        raise ConfigError("the chain-bridge role needs the client role and `[chain] requests` "
                          "(the LilypadRequests address on the settlement chain)")
    requests = RequestsClient(deal_chain.sync.chain, requests_contract, identity.eth_account())
    return BridgeRole(requests=requests, client=client, store=store,
                      state_path=home / "bridge.json", confirmations=confirmations,
                      trusted_mediators=trusted_mediators)


def deal_output(store: DealStore, stored: ClientDeal) -> bytes | Path | None:
    """A deal's output for the chain: the copy the store keeps of an output up to
    `MAX_STORED_RESULT_BYTES`, else the client's results file (a larger one, never read whole:
    it is delivered by CID), else None."""
    kept = store.result(stored.record.key)
    if kept is not None:
        return kept
    path = stored.detail.result_path
    return Path(path) if path and Path(path).is_file() else None
