"""Reading LilypadRequests poll by poll, for the chain bridge and the request checker: which
blocks a poll reads (a reorg margin below the cursor, confirmations below the head), the poll
loop that outlives a chain away for a while, and a request's inputs as module parameters.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import trio

from lilypad_p2p.chain import ChainError, RequestedJob
from lilypad_p2p.logs import event

# Blocks re-read below the cursor every poll, so a request that a reorg moved is still seen.
REORG_DEPTH_BLOCKS = 12


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


class SetAside:
    """Requests a poller is done with, by their block: each poll reads the reorg margin again,
    which must not take them up (and log them) again. Forgotten once their block is below
    what a poll reads."""

    def __init__(self) -> None:
        self.blocks: dict[bytes, int] = {}

    def add(self, requested: RequestedJob) -> None:
        self.blocks[requested.request_id] = requested.block_number

    def __contains__(self, requested: RequestedJob) -> bool:
        """Whether `requested` is one set aside, at the same block (a reorg that moved it makes
        it a request to look at again)."""
        return self.blocks.get(requested.request_id) == requested.block_number

    def trim(self, plan: ScanPlan) -> None:
        self.blocks = {r: b for r, b in self.blocks.items() if b >= plan.from_block}


async def poll_chain(
    poll_once: Callable[[], Awaitable[None]], logger: logging.Logger, what: str,
    interval_s: float,
) -> None:
    """Run `poll_once` every `interval_s` until cancelled; a chain that is away is logged as
    `<what>.chain_error` and tried again at the next poll."""
    while True:
        try:
            await poll_once()
        except ChainError as exc:
            event(logger, f"{what}.chain_error", logging.WARNING, error=repr(exc))
        await trio.sleep(interval_s)


def plan_scan(cursor: int, latest: int, confirmations: int) -> ScanPlan:
    """What to read this poll: from REORG_DEPTH_BLOCKS below the cursor to the chain's head."""
    if confirmations < 0 or cursor < 0 or latest < 0:
        raise ValueError("block numbers and confirmations are never negative")
    start = min(max(0, cursor - REORG_DEPTH_BLOCKS), latest + 1)
    return ScanPlan(start, latest, latest - confirmations)


def next_cursor(unfinished_blocks: Iterable[int], plan: ScanPlan) -> int:
    """Where a scan may begin after this one: at the oldest request still being served (what
    a restarted bridge must read again), else just above the confirmed head (unconfirmed
    requests are read again)."""
    return min(unfinished_blocks, default=max(plan.confirmed_head + 1, 0))


def request_params(inputs: bytes) -> dict[str, Any]:
    """A request's inputs: a JSON object of the module's parameters (UTF-8)."""
    value = json.loads(inputs.decode())
    if not isinstance(value, dict):
        raise ValueError("request inputs must be a JSON object of module parameters")
    return value
