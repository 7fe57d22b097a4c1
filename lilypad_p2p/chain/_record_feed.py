"""Providers' track records as of any replayed block, kept up to date from the chains.

A job offer names the block its records are read at (`JobOffer.records_block`); solvers and
the job's client must read the same records there, so the feed keeps every settlement event
it replayed and answers "records at block B" from the events up to B (`track_records`), or
None while its replay has not reached B (the caller then waits: guessing would split solvers).

The feed polls slowly, and at once when someone asks for a block it has not replayed: records
are wanted only by jobs that name a block, and such a job's solvers and client ask for it.
"""

from __future__ import annotations

import bisect
import logging
from collections import OrderedDict
from collections.abc import Iterable, Mapping

import trio

from lilypad_p2p.blocking import run_blocking
from lilypad_p2p.chain._backend import Chain
from lilypad_p2p.chain._errors import ChainError
from lilypad_p2p.chain._records import RECORD_EVENTS, deployment_block, settlement_events
from lilypad_p2p.chain._watcher import EventWatcher
from lilypad_p2p.health import Backoff
from lilypad_p2p.logs import event
from lilypad_p2p.market import RecordsAt, SettlementEvent, TrackRecord, track_records
from lilypad_p2p.wire import JobOffer

log = logging.getLogger("lilypad_p2p.records")

# Pause between polls of a chain's settlement events while nobody asks for a newer block. A
# job naming a block past the replay wakes the feed at once; until one does, the records serve
# the `market` view, where a quarter-minute old record is fresh enough. (At 2 s, the feeds of a
# 50-node market's clients and solvers made a fifth of its chain requests.)
RECORD_POLL_S = 15.0
# Least time between two polls of one chain: a burst of jobs naming new blocks costs one poll
# per this, not one per job, and a job naming a block that never comes (a hostile one) costs
# each solver at most this rate while it is open.
WANTED_POLL_GAP_S = 1.0
# Records computed at distinct blocks kept for reuse (jobs of one client name one block).
RECORD_CACHE = 64


class RecordFeed:
    """Settlement events per chain, replayed so far, and records at any block up to the head."""

    def __init__(self) -> None:
        self._events: dict[int, list[SettlementEvent]] = {}
        self._blocks: dict[int, list[int]] = {}
        self._head: dict[int, int] = {}
        self._cache: OrderedDict[tuple[int, int], Mapping[str, TrackRecord]] = OrderedDict()
        self._wanted: dict[int, trio.Event] = {}

    def add(self, chain_id: int, events: Iterable[SettlementEvent], head: int) -> None:
        """Events replayed up to and including block `head`, in chain order."""
        kept = self._events.setdefault(chain_id, [])
        blocks = self._blocks.setdefault(chain_id, [])
        for item in events:
            kept.append(item)
            blocks.append(item.block)
        self._head[chain_id] = max(head, self._head.get(chain_id, -1))

    def head(self, chain_id: int) -> int | None:
        """The last block replayed on `chain_id`, or None if none was."""
        return self._head.get(chain_id)

    def records_at(self, chain_id: int, block: int) -> Mapping[str, TrackRecord] | None:
        """Every provider's record as of `block`; None while the replay has not reached it."""
        head = self._head.get(chain_id)
        if head is None or block > head:
            self._want(chain_id)
            return None
        key = (chain_id, block)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        upto = bisect.bisect_right(self._blocks[chain_id], block)
        records = track_records(self._events[chain_id][:upto])
        self._cache[key] = records
        if len(self._cache) > RECORD_CACHE:
            self._cache.popitem(last=False)
        return records

    def for_jobs(self, jobs: Iterable[JobOffer]) -> RecordsAt:
        """The records the jobs name that this feed has (`match`'s `records`)."""
        found: dict[tuple[int, int], Mapping[str, TrackRecord]] = {}
        for job in jobs:
            key = (job.chain_id, job.records_block)
            if job.records_block and key not in found:
                records = self.records_at(*key)
                if records is not None:
                    found[key] = records
        return found

    def _want(self, chain_id: int) -> None:
        wanted = self._wanted.get(chain_id)
        if wanted is not None:
            wanted.set()

    async def follow(self, chain: Chain, contract: str, *, poll_s: float = RECORD_POLL_S,
                     task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Replay `contract`'s events from the block that deployed it, then poll every
        `poll_s`, or sooner when records past the replay are asked for; a chain that does not
        answer is retried with backoff, never fatal."""
        watcher: EventWatcher | None = None
        backoff = Backoff()
        started = False
        while True:
            try:
                if watcher is None:
                    first = await run_blocking(deployment_block, chain, contract)
                    watcher = EventWatcher(chain, contract, from_block=first,
                                           events=RECORD_EVENTS)
                found = await run_blocking(watcher.poll)
            except ChainError as exc:
                event(log, "records.poll_failed", logging.WARNING, chain_id=chain.chain_id,
                      error=str(exc))
                await trio.sleep(backoff.next_s())
                continue
            backoff.reset()
            self.add(chain.chain_id, settlement_events(found), watcher.cursor - 1)
            if not started:
                task_status.started()
                started = True
            await self._until_wanted(chain.chain_id, poll_s)

    async def _until_wanted(self, chain_id: int, poll_s: float) -> None:
        wanted = self._wanted[chain_id] = trio.Event()
        gap_s = min(poll_s, WANTED_POLL_GAP_S)
        await trio.sleep(gap_s)
        with trio.move_on_after(poll_s - gap_s):
            await wanted.wait()
