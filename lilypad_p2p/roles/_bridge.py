"""The chain bridge (`--chain-bridge`): serves on-chain job requests with the client role.

    bridge = BridgeRole(requests=..., client=client_role, store=store, state_path=...)
    await nursery.start(bridge.run)

Each poll it reads LilypadRequests' JobRequested events, submits every pending request it does
not serve yet as a job whose deal salt is the request id (the binding the contract checks), and
delivers each request whose deal has settled: the deal, the provider's commitment, our
acceptance and the output tarball go to `deliver`, which verifies them on chain; the contract
then reimburses us the deal's payment from the requester's escrow.

Restarts and reorgs: which requests are served is read from the deal store (a client deal's
salt is its request id), so a restart never submits a request twice; a request whose deals all
ended without settling is submitted again while it is pending and before its deadline. The
scan restarts REORG_DEPTH_BLOCKS back each poll, and persists only where it may begin; a
request reorged out of the chain has no on-chain record and is not delivered (request ids bind
their contents, so a replacement request at the same position has another id).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from lilypad_p2p.chain import (
    ChainError,
    ContractRevert,
    RequestedJob,
    RequestsClient,
    RequestStatus,
)
from lilypad_p2p.errors import ConfigError, LilypadError
from lilypad_p2p.logs import event
from lilypad_p2p.market import Phase, Side
from lilypad_p2p.roles._client import (
    DEFAULT_JOB_DEADLINE_S,
    ClientRole,
    JobSubmission,
    SubmissionError,
)
from lilypad_p2p.roles._terms import deal_from_wire
from lilypad_p2p.store import DealStore

log = logging.getLogger("lilypad_p2p.bridge")

# How often the bridge looks at the chain for new requests and settled deals.
BRIDGE_POLL_INTERVAL_S = 1.0
# Blocks re-read every poll, so a request that a reorg moved to another block is still seen.
REORG_DEPTH_BLOCKS = 12
# A job must have its result this long before the request's deadline, to deliver in time.
DELIVERY_MARGIN_S = 30


@dataclass(frozen=True, slots=True)
class BridgeStatistics:
    submitted: int
    delivered: int
    failed_submissions: int


class BridgeRole:
    def __init__(
        self,
        *,
        requests: RequestsClient,
        client: ClientRole,
        store: DealStore,
        state_path: Path,
    ) -> None:
        self._requests = requests
        self._client = client
        self._store = store
        self._state_path = state_path
        self._pending: dict[bytes, RequestedJob] = {}
        self._refused: set[bytes] = set()  # requests we can never serve (bad module/params)
        self._submitted = 0
        self._delivered = 0

    def statistics(self) -> BridgeStatistics:
        return BridgeStatistics(self._submitted, self._delivered, len(self._refused))

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
        start = max(0, self._scan_from() - REORG_DEPTH_BLOCKS)
        found = await trio.to_thread.run_sync(self._requests.requested_between, start, latest)
        for requested in found:
            self._pending.setdefault(requested.request_id, requested)
        now = await trio.to_thread.run_sync(self._requests.chain.now)
        deals = self._deals_by_request()
        for request_id, requested in list(self._pending.items()):
            await self._serve(requested, deals.get(request_id, []), now)
        unfinished = [r.block_number for r in self._pending.values()]
        self._save_scan_from(min(unfinished, default=latest + 1))

    async def _serve(self, requested: RequestedJob, keys: list[str], now: int) -> None:
        request_id = requested.request_id
        status = (await trio.to_thread.run_sync(self._requests.request, request_id)).status
        if status is not RequestStatus.PENDING:
            self._pending.pop(request_id, None)  # delivered, refunded, or reorged away
            return
        phases = {key: self._store.get(key).record.phase for key in keys}  # type: ignore[union-attr]
        for key, phase in phases.items():
            if phase is Phase.SETTLED:
                await self._deliver(requested, key)
                return
        if any(not phase.is_final for phase in phases.values()) or request_id in self._refused:
            return
        deadline_s = min(DEFAULT_JOB_DEADLINE_S, requested.deadline - now - DELIVERY_MARGIN_S)
        if deadline_s <= 0:
            return  # too late to serve; the requester takes a refund
        try:
            job = JobSubmission(module=requested.module, params=_params(requested.inputs),
                                max_price_wei=requested.max_price, deadline_s=deadline_s,
                                salt=request_id)
            key = await self._client.submit(job)
        except (SubmissionError, ValueError) as exc:
            self._refused.add(request_id)
            event(log, "bridge.request_refused", logging.WARNING,
                  request="0x" + request_id.hex(), error=str(exc))
            return
        self._submitted += 1
        event(log, "bridge.request_submitted", request="0x" + request_id.hex(), key=key)

    async def _deliver(self, requested: RequestedJob, key: str) -> None:
        stored = self._store.get(key)
        tarball = self._store.result(key)
        assert stored is not None
        if tarball is None:
            raise LilypadError(f"settled deal {key} has no stored output")
        detail = stored.detail
        try:
            receipt = await trio.to_thread.run_sync(
                lambda: self._requests.deliver(
                    requested.request_id, deal_from_wire(detail["deal"]), tarball,
                    detail["provider_commitment"], detail["acceptance_signature"]))
        except ContractRevert as exc:
            if exc.error != "NotPending":  # someone else delivered it first: fine
                event(log, "bridge.delivery_refused", logging.WARNING,
                      request="0x" + requested.request_id.hex(), error=str(exc))
                return
        else:
            delivered = self._requests.delivered(receipt)
            self._delivered += 1
            event(log, "bridge.delivered", request="0x" + requested.request_id.hex(), key=key,
                  callback_ok=delivered["callbackSucceeded"], gas=receipt.gas_used)
        self._pending.pop(requested.request_id, None)

    def _deals_by_request(self) -> dict[bytes, list[str]]:
        by_request: dict[bytes, list[str]] = {}
        for stored in self._store.deals(Side.CLIENT):
            salt = stored.detail.get("salt")
            if isinstance(salt, bytes) and salt in self._pending:
                by_request.setdefault(salt, []).append(stored.record.key)
        return by_request

    def _scan_from(self) -> int:
        try:
            return int(json.loads(self._state_path.read_text())["scan_from"])
        except FileNotFoundError:
            return 0
        except (ValueError, KeyError, TypeError) as exc:
            raise LilypadError(f"{self._state_path} is corrupt: {exc}") from exc

    def _save_scan_from(self, block: int) -> None:
        temporary = self._state_path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"scan_from": block}))
        os.replace(temporary, self._state_path)


def _params(inputs: bytes) -> dict[str, Any]:
    """A request's inputs: a JSON object of the module's parameters (UTF-8)."""
    value = json.loads(inputs.decode())
    if not isinstance(value, dict):
        raise ValueError("request inputs must be a JSON object of module parameters")
    return value


def open_bridge(
    requests_contract: str | None, deal_chain: Any, identity: Any, client: ClientRole | None,
    store: DealStore, home: Path,
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
                      state_path=home / "bridge.json")
