"""Poll-based watcher of the settlement contract's events, with a cursor the caller can persist.

Reorg tolerance: only blocks at least `confirmations` deep are scanned; and the hash of the last
scanned block is remembered, so if a deeper reorg replaces it the watcher rewinds
`REORG_RESCAN_DEPTH` blocks and scans again, never delivering the same (tx, log index) twice.
An event already delivered from a block that a reorg removed cannot be taken back: roles that
act on money set `confirmations` to the chain's finality depth (0 is right for the embedded
chain and anvil, which never reorganise by themselves).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import trio
from eth_utils import to_checksum_address

from lilypad_p2p.blocking import run_blocking
from lilypad_p2p.chain._abi import contract_abi
from lilypad_p2p.chain._artifacts import SETTLEMENT
from lilypad_p2p.chain._backend import Chain
from lilypad_p2p.chain._errors import ChainError
from lilypad_p2p.logs import event

log = logging.getLogger("lilypad_p2p.chain")

# Most blocks asked for in one eth_getLogs (public nodes cap the range).
MAX_BLOCK_RANGE = 2_000
# Blocks re-scanned after the last scanned block was reorganised away.
REORG_RESCAN_DEPTH = 64
# How long delivered (tx, log index) pairs are remembered to drop duplicates after a rescan.
DEDUPE_MEMORY = 10_000
# Default pause between polls of the async watcher.
POLL_INTERVAL_S = 0.5


@dataclass(frozen=True, slots=True)
class ChainEvent:
    """One decoded contract event."""

    name: str
    args: Mapping[str, Any]
    block_number: int
    tx_hash: bytes
    log_index: int

    @property
    def deal_id(self) -> bytes | None:
        value = self.args.get("dealId")
        return bytes(value) if value is not None else None


def decode_log(address: str, log: Any) -> ChainEvent | None:
    """Decode a raw log of the settlement contract at `address` (checksummed); None if it is
    not one of its events."""
    if to_checksum_address(log["address"]) != address:
        return None
    try:
        name, args = contract_abi(SETTLEMENT).decode_event(log["topics"], log["data"])
    except ValueError:
        return None
    return ChainEvent(
        name=name,
        args=args,
        block_number=int(log["blockNumber"]),
        tx_hash=bytes(log["transactionHash"]),
        log_index=int(log["logIndex"]),
    )


class EventWatcher:
    """Delivers the contract's events in chain order, each once, from `from_block` on."""

    def __init__(
        self, chain: Chain, address: str, *, from_block: int = 0, confirmations: int = 0,
        events: Collection[str] | None = None,
    ) -> None:
        """`events`: the names of the events wanted (the node asks for those only); all by
        default."""
        self.chain = chain
        self.cursor = from_block  # next block to scan; persist it to resume after a restart
        self._floor = from_block  # a rewind never goes below where the caller asked to start
        self.confirmations = confirmations
        self._address = to_checksum_address(address)
        abi = contract_abi(SETTLEMENT)
        self._topics = None if events is None else [
            ["0x" + abi.event_topic(name).hex() for name in sorted(events)]
        ]
        self._last_scanned: tuple[int, bytes] | None = None
        self._delivered: OrderedDict[tuple[bytes, int], None] = OrderedDict()

    def poll(self) -> list[ChainEvent]:
        """Scan the confirmed blocks not scanned yet (blocking; see `run` for trio).

        While the head has not moved, a poll is that one call (the head's header): a
        reorganisation at the same height is found by the first poll after the head moves on
        (its events were delivered either way), and an idle chain costs every watcher one
        request per poll. With no confirmations, the header also gives the hash of the last
        block scanned and, when the head moved one block, of the one before: a poll that finds
        new blocks is then the header and `eth_getLogs`, plus one hash read if the head moved
        further.
        """
        head = self.chain.rpc(lambda: self.chain.w3.eth.get_block("latest"))
        known = {int(head["number"]): bytes(head["hash"]),
                 int(head["number"]) - 1: bytes(head["parentHash"])}
        safe_head = int(head["number"]) - self.confirmations
        if safe_head < self.cursor:
            return []
        self._rewind_if_reorganised(known)
        events: list[ChainEvent] = []
        try:
            self._scan_to(safe_head, known, events)
        except ChainError:
            if not events:
                raise
            # The blocks scanned before the chain stopped answering are delivered now (they
            # are marked delivered); the next poll goes on from the cursor.
        return events

    def _scan_to(self, safe_head: int, known: dict[int, bytes], events: list[ChainEvent]) -> None:
        while self.cursor <= safe_head:
            last = min(safe_head, self.cursor + MAX_BLOCK_RANGE - 1)
            query: dict[str, Any] = {"address": self._address, "fromBlock": self.cursor,
                                     "toBlock": last}
            if self._topics is not None:
                query["topics"] = self._topics
            with self.chain.timed("eth_getLogs"):
                logs = self.chain.rpc(lambda q=query: self.chain.w3.eth.get_logs(q))  # type: ignore[misc]
            for raw in logs:
                found = decode_log(self._address, raw)
                if found is not None and self._first_delivery(found):
                    events.append(found)
            self._last_scanned = (last, known.get(last) or self._block_hash(last))
            self.cursor = last + 1

    async def run(
        self,
        send_channel: trio.MemorySendChannel[ChainEvent],
        *,
        poll_interval: float = POLL_INTERVAL_S,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Poll forever, sending each event; `started()` after the first poll has delivered.
        A poll the chain does not answer is tried again after `poll_interval`: an RPC outage
        delays the events, it does not end the watcher (its start and end are logged)."""
        async with send_channel:
            started = failing = False
            while True:
                try:
                    found = await run_blocking(self.poll)
                except ChainError as exc:
                    if not failing:
                        event(log, "chain.watch_failed", logging.WARNING,
                              address=self._address, next_block=self.cursor, error=str(exc))
                    failing = True
                    await trio.sleep(poll_interval)
                    continue
                if failing:
                    event(log, "chain.watch_resumed", address=self._address)
                    failing = False
                for chain_event in found:
                    await send_channel.send(chain_event)
                if not started:
                    task_status.started()
                    started = True
                await trio.sleep(poll_interval)

    def _rewind_if_reorganised(self, known: dict[int, bytes]) -> None:
        """Rescan the last blocks if the last one scanned is no longer on the chain (`known`:
        hashes by number already read this poll)."""
        if self._last_scanned is None:
            return
        number, seen_hash = self._last_scanned
        if (known.get(number) or self._block_hash(number)) != seen_hash:
            self.cursor = max(self._floor, number - REORG_RESCAN_DEPTH + 1)
            self._last_scanned = None

    def _block_hash(self, number: int) -> bytes:
        block = self.chain.rpc(lambda: self.chain.w3.eth.get_block(number))
        return bytes(block["hash"])

    def _first_delivery(self, event: ChainEvent) -> bool:
        key = (event.tx_hash, event.log_index)
        if key in self._delivered:
            return False
        self._delivered[key] = None
        if len(self._delivered) > DEDUPE_MEMORY:
            self._delivered.popitem(last=False)
        return True
