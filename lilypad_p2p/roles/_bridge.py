"""The chain bridge (`--chain-bridge`): serves on-chain job requests with the client role.

    bridge = BridgeRole(requests=..., client=client_role, store=store, state_path=...,
                        confirmations=12)
    await nursery.start(bridge.run)

Each poll it reads LilypadRequests' JobRequested events, submits every confirmed pending
request it does not serve yet as a job whose deal salt is the request id (the binding the
contract checks), and closes each request whose deal has ended:
- settled: the deal, the provider's commitment, our acceptance and the output tarball go to
  `deliver`, which verifies them on chain (an output over 1 KiB reaches the callback as its
  CID; a tarball too large for calldata goes by `deliverCid`, which only we, the job creator,
  may call); the contract then reimburses us the deal's payment from the requester's escrow;
- resolved by the mediators: ProviderCorrect delivers like a settled deal (the verdict upheld
  the provider's committed result); ProviderWrong or NonDeterministic `refundFailed` the request
  at once (nothing is delivered; NonDeterministic reimburses us the payment the verdict made us
  pay the provider).

Reorgs: a request is acted on only once `confirmations` blocks are mined on top of its block
(`plan_scan`); one that a deeper reorg removes before delivery has no on-chain record any more
and is dropped, never delivered (request ids bind their contents, so a replacement request at
the same position has another id). Restarts: which requests are served is read from the deal
store (a client deal's salt is its request id), so a restart never submits a request twice; a
request whose deals all ended without a result is submitted again while it is pending and
before its deadline. The cursor (`state_path`, JSON) never passes an unfinished or unconfirmed
request, and each poll re-reads REORG_DEPTH_BLOCKS below it, so a restart loses none.
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

from lilypad_p2p.chain import (
    ChainError,
    ContractRevert,
    Outcome,
    RequestedJob,
    RequestsClient,
    RequestStatus,
    SettlementClient,
)
from lilypad_p2p.errors import ConfigError, LilypadError
from lilypad_p2p.logs import event
from lilypad_p2p.market import Phase, Side
from lilypad_p2p.roles._client import (
    DEFAULT_JOB_DEADLINE_S,
    ClientRole,
    JobSubmission,
    SubmissionError,
    result_hash,
)
from lilypad_p2p.roles._terms import deal_from_wire
from lilypad_p2p.store import DealStore, StoredDeal

log = logging.getLogger("lilypad_p2p.bridge")

# How often the bridge looks at the chain for new requests and ended deals.
BRIDGE_POLL_INTERVAL_S = 1.0
# Blocks re-read below the cursor every poll, so a request that a reorg moved is still seen.
REORG_DEPTH_BLOCKS = 12
# Blocks mined on top of a request before the bridge acts on it (config `bridge_confirmations`).
# 12 suits Ethereum-like chains; a dev chain that mines only on demand (anvil) needs 0.
DEFAULT_CONFIRMATIONS = 12
# A job must have its result this long before the request's deadline, to deliver in time.
DELIVERY_MARGIN_S = 30
# Larger output tarballs are delivered by `deliverCid` (ours to call) instead of as calldata:
# 64 KiB of calldata costs up to ~1M gas.
MAX_TARBALL_CALLDATA_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class BridgeStatistics:
    submitted: int
    delivered: int
    refunded_after_verdict: int
    failed_submissions: int


@dataclass(frozen=True, slots=True)
class ScanPlan:
    """One poll's block range: events in `from_block..to_block` are read; only requests at or
    below `confirmed_head` are acted on."""

    from_block: int
    to_block: int
    confirmed_head: int

    def __post_init__(self) -> None:
        if not 0 <= self.from_block <= self.to_block + 1 or self.confirmed_head > self.to_block:
            raise ValueError(f"inconsistent scan plan {self}")

    def confirmed(self, requested: RequestedJob) -> bool:
        return requested.block_number <= self.confirmed_head


def plan_scan(cursor: int, latest: int, confirmations: int) -> ScanPlan:
    """What to read this poll: from REORG_DEPTH_BLOCKS below the cursor to the chain's head."""
    if confirmations < 0 or cursor < 0 or latest < 0:
        raise ValueError("block numbers and confirmations are never negative")
    start = min(max(0, cursor - REORG_DEPTH_BLOCKS), latest + 1)
    return ScanPlan(start, latest, latest - confirmations)


def next_cursor(unfinished_blocks: Iterable[int], plan: ScanPlan) -> int:
    """Where the next scan (or a restarted bridge) may begin: at the oldest request still being
    served, else just above the confirmed head (unconfirmed requests are read again)."""
    return min(unfinished_blocks, default=max(plan.confirmed_head + 1, 0))


class BridgeRole:
    def __init__(
        self,
        *,
        requests: RequestsClient,
        client: ClientRole,
        store: DealStore,
        state_path: Path,
        confirmations: int = DEFAULT_CONFIRMATIONS,
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
        self._unconfirmed_seen: set[bytes] = set()
        self._refused: set[bytes] = set()  # requests we can never serve (bad module/params)
        self._undeliverable: set[bytes] = set()  # ended deals we cannot deliver (logged)
        self._submitted = 0
        self._delivered = 0
        self._refunded = 0

    def statistics(self) -> BridgeStatistics:
        return BridgeStatistics(self._submitted, self._delivered, self._refunded,
                                len(self._refused))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            try:
                await self.poll_once()
            except ChainError as exc:  # the chain is away: try again next poll
                event(log, "bridge.chain_error", logging.WARNING, error=repr(exc))
            await trio.sleep(BRIDGE_POLL_INTERVAL_S)

    async def poll_once(self) -> None:
        latest = await trio.to_thread.run_sync(self._requests.chain.block_number)
        plan = plan_scan(self._scan_from(), latest, self._confirmations)
        found = [] if plan.from_block > plan.to_block else await trio.to_thread.run_sync(
            self._requests.requested_between, plan.from_block, plan.to_block)
        for requested in found:
            if plan.confirmed(requested):
                self._pending[requested.request_id] = requested  # a reorg may have moved it
            elif requested.request_id not in self._unconfirmed_seen:
                self._unconfirmed_seen.add(requested.request_id)
                event(log, "bridge.awaiting_confirmations",
                      request="0x" + requested.request_id.hex(), block=requested.block_number,
                      confirmations=self._confirmations)
        now = await trio.to_thread.run_sync(self._requests.chain.now)
        deals = self._deals_by_request()
        for request_id, requested in list(self._pending.items()):
            await self._serve(requested, deals.get(request_id, []), now)
        cursor = next_cursor((r.block_number for r in self._pending.values()), plan)
        self._save_state(cursor, latest)

    async def _serve(self, requested: RequestedJob, deals: list[StoredDeal], now: int) -> None:
        request_id = requested.request_id
        status = (await trio.to_thread.run_sync(self._requests.request, request_id)).status
        if status is not RequestStatus.PENDING:
            if status is RequestStatus.NONE:
                event(log, "bridge.request_gone", logging.WARNING,
                      request="0x" + request_id.hex(), reason="reorged out of the chain")
            self._pending.pop(request_id, None)  # delivered, refunded, or reorged away
            return
        if request_id in self._undeliverable:
            return  # logged once; the requester takes a refund after its deadline
        for stored in deals:
            if stored.record.phase is Phase.SETTLED:
                await self._deliver(requested, stored, acceptance=True)
                return
            if stored.record.phase is Phase.RESOLVED:
                await self._close_resolved(requested, stored)
                return
        if any(not d.record.phase.is_final for d in deals) or request_id in self._refused:
            return
        deadline_s = min(DEFAULT_JOB_DEADLINE_S, requested.deadline - now - DELIVERY_MARGIN_S)
        if deadline_s <= 0:
            return  # too late to serve; the requester takes a refund
        try:
            job = JobSubmission(module=requested.module, params=_params(requested.inputs),
                                max_price_wei=requested.max_price, deadline_s=deadline_s,
                                salt=request_id, chain_id=self._requests.chain.chain_id)
            key = await self._client.submit(job)
        except (SubmissionError, ValueError) as exc:
            self._refused.add(request_id)
            event(log, "bridge.request_refused", logging.WARNING,
                  request="0x" + request_id.hex(), error=str(exc))
            return
        self._submitted += 1
        event(log, "bridge.request_submitted", request="0x" + request_id.hex(), key=key)

    async def _close_resolved(self, requested: RequestedJob, stored: StoredDeal) -> None:
        """Deliver a deal the mediators ruled ProviderCorrect; refund the request otherwise."""
        deal = deal_from_wire(stored.detail["deal"])
        settlement = await self._settlement_client()
        state = await trio.to_thread.run_sync(settlement.deal_state, deal)
        if state.outcome is Outcome.PROVIDER_CORRECT:
            await self._deliver(requested, stored, acceptance=False)
            return
        if state.outcome is None:
            self._give_up(requested, stored, f"chain shows the deal {state.status.name}")
            return
        try:
            receipt = await trio.to_thread.run_sync(
                self._requests.refund_failed, requested.request_id, deal)
        except ContractRevert as exc:
            self._refusal(requested, exc)
            return
        self._refunded += 1
        event(log, "bridge.refunded_after_verdict", request="0x" + requested.request_id.hex(),
              key=stored.record.key, outcome=state.outcome.name, gas=receipt.gas_used)
        self._pending.pop(requested.request_id, None)

    async def _deliver(self, requested: RequestedJob, stored: StoredDeal, *,
                       acceptance: bool) -> None:
        tarball = self._store.result(stored.record.key)
        if tarball is None:
            self._give_up(requested, stored, "no stored output")
            return
        detail = stored.detail
        deal = deal_from_wire(detail["deal"])
        # A Resolved deal needs no acceptance: the verdict stands in for it.
        accepted = detail["acceptance_signature"] if acceptance else b""
        by_cid = len(tarball) > MAX_TARBALL_CALLDATA_BYTES
        try:
            if by_cid:
                receipt = await trio.to_thread.run_sync(
                    lambda: self._requests.deliver_cid(
                        requested.request_id, deal, result_hash(tarball),
                        detail["provider_commitment"], accepted))
            else:
                receipt = await trio.to_thread.run_sync(
                    lambda: self._requests.deliver(
                        requested.request_id, deal, tarball, detail["provider_commitment"],
                        accepted))
        except ContractRevert as exc:
            self._refusal(requested, exc)
            return
        delivered = self._requests.delivered(receipt)
        self._delivered += 1
        event(log, "bridge.delivered", request="0x" + requested.request_id.hex(),
              key=stored.record.key, by_cid=delivered["outputIsCid"],
              callback_ok=delivered["callbackSucceeded"], gas=receipt.gas_used)
        self._pending.pop(requested.request_id, None)

    def _refusal(self, requested: RequestedJob, exc: ContractRevert) -> None:
        if exc.error == "NotPending":  # someone else closed it first: fine
            self._pending.pop(requested.request_id, None)
            return
        self._undeliverable.add(requested.request_id)
        event(log, "bridge.delivery_refused", logging.WARNING,
              request="0x" + requested.request_id.hex(), error=str(exc))

    def _give_up(self, requested: RequestedJob, stored: StoredDeal, why: str) -> None:
        self._undeliverable.add(requested.request_id)
        event(log, "bridge.undeliverable", logging.WARNING,
              request="0x" + requested.request_id.hex(), key=stored.record.key, reason=why)

    async def _settlement_client(self) -> SettlementClient:
        """The settlement contract LilypadRequests reads (read-only)."""
        if self._settlement is None:
            address = await trio.to_thread.run_sync(self._requests.settlement_address)
            self._settlement = SettlementClient(self._requests.chain, address)
        return self._settlement

    def _deals_by_request(self) -> dict[bytes, list[StoredDeal]]:
        by_request: dict[bytes, list[StoredDeal]] = {}
        for stored in self._store.deals(Side.CLIENT):
            salt = stored.detail.get("salt")
            if isinstance(salt, bytes) and salt in self._pending:
                by_request.setdefault(salt, []).append(stored)
        return by_request

    def _scan_from(self) -> int:
        try:
            return int(json.loads(self._state_path.read_text())["scan_from"])
        except FileNotFoundError:
            return 0
        except (ValueError, KeyError, TypeError) as exc:
            raise LilypadError(f"{self._state_path} is corrupt: {exc}") from exc

    def _save_state(self, scan_from: int, head: int) -> None:
        """The cursor, and the head last polled (so an observer knows what the bridge saw)."""
        temporary = self._state_path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"scan_from": scan_from, "head": head}))
        os.replace(temporary, self._state_path)


def _params(inputs: bytes) -> dict[str, Any]:
    """A request's inputs: a JSON object of the module's parameters (UTF-8)."""
    value = json.loads(inputs.decode())
    if not isinstance(value, dict):
        raise ValueError("request inputs must be a JSON object of module parameters")
    return value


def open_bridge(
    requests_contract: str | None, deal_chain: Any, identity: Any, client: ClientRole | None,
    store: DealStore, home: Path, *, confirmations: int = DEFAULT_CONFIRMATIONS,
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
                      state_path=home / "bridge.json", confirmations=confirmations)
