"""Providers' track records as of any recent block, kept up to date from the chains.

A job offer names the block its records are read at (`JobOffer.records_block`); solvers and
the job's client must read the same records there, so the feed answers "records at block B"
with exactly `track_records` of the chain's events up to and including B, or None while its
replay has not reached B (the caller then waits: guessing would split solvers).

Every node with a market role runs a feed, and the contract's events are the whole network's,
so the feed keeps a bounded part of them: a fold (`RecordFold`) of the events up to a floor
block, `RECORD_WINDOW_BLOCKS` behind the head, plus the events after it; an event is folded into
the floor as it ages out of the window. Records at a block B at or after the floor are the
floor's fold (or a fold kept from an earlier answer between the floor and B) with the events up
to B applied: the cost of an answer grows with the events since, not with the contract's age.
A block older than the floor is answered None, and is not polled for: a job naming it never
matches, as one whose records are not known.

The feed polls slowly, and at once when someone asks for a block it has not replayed: records
are wanted only by jobs that name a block, and such a job's solvers and client ask for it.
"""

from __future__ import annotations

import bisect
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import trio

from lilypad_p2p.blocking import run_blocking
from lilypad_p2p.chain._backend import Chain
from lilypad_p2p.chain._errors import ChainError
from lilypad_p2p.chain._records import RECORD_EVENTS, deployment_block, settlement_events
from lilypad_p2p.chain._watcher import EventWatcher
from lilypad_p2p.health import Backoff
from lilypad_p2p.logs import event
from lilypad_p2p.market import RecordFold, RecordsAt, SettlementEvent, TrackRecord
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
# How far behind the head a block's records can still be read. A job names its chain's head
# when it is posted, and its records are read until it expires: 100 s by default
# (roles/_client.py JOB_OFFER_LIFETIME_MS), up to a day with the longest match timeout
# (config.py) or offer lifetime (wire MAX_LIFETIME_MS). A day of 2 s blocks (Base, Optimism)
# covers the day-long job there and on slower chains (7,200 blocks on Ethereum), and a
# default job at up to 400 blocks a second: anvil mines a block per transaction, so a busy
# 50-node simnet makes many a second. Memory grows with the events in the window (anvil: at most a
# few per block), so it is not made longer for chains whose days are longer still (a
# quarter-second chain keeps a job's records for three hours).
RECORD_WINDOW_BLOCKS = 43_200
# Folds kept at blocks answered lately, per chain, to answer later blocks from: jobs name
# blocks close to the head, so each new block costs the events since the nearest one. Each
# holds the providers and the open deals, hence few.
RECORD_FOLDS = 8


@dataclass(eq=False, slots=True)
class _ChainRecords:
    """One chain's events: `base` has those up to block `floor` folded, `events` (with their
    `blocks`) the later ones in chain order, `folds` folds at blocks answered lately."""

    head: int = -1
    floor: int = -1
    base: RecordFold = field(default_factory=RecordFold)
    events: list[SettlementEvent] = field(default_factory=list)
    blocks: list[int] = field(default_factory=list)
    folds: OrderedDict[int, RecordFold] = field(default_factory=OrderedDict)


class RecordFeed:
    """Settlement events per chain, replayed so far, and records at any block in the window
    (`RECORD_WINDOW_BLOCKS` up to the head)."""

    def __init__(self, *, window_blocks: int = RECORD_WINDOW_BLOCKS) -> None:
        if window_blocks < 0:
            raise ValueError(f"window_blocks must be >= 0, got {window_blocks}")
        self._window = window_blocks
        self._chains: dict[int, _ChainRecords] = {}
        self._cache: OrderedDict[tuple[int, int], Mapping[str, TrackRecord]] = OrderedDict()
        self._wanted: dict[int, trio.Event] = {}

    def add(self, chain_id: int, events: Iterable[SettlementEvent], head: int) -> None:
        """Events replayed up to and including block `head`, in chain order."""
        chain = self._chains.get(chain_id)
        if chain is None:
            chain = self._chains[chain_id] = _ChainRecords()
        rescanned: int | None = None
        for item in events:
            if item.block <= chain.floor:
                chain.base.apply([item])  # too late to place: as if it came before the window
            elif not chain.blocks or item.block >= chain.blocks[-1]:
                chain.events.append(item)
                chain.blocks.append(item.block)
            else:
                at = bisect.bisect_right(chain.blocks, item.block)
                chain.events.insert(at, item)
                chain.blocks.insert(at, item.block)
            if item.block <= chain.head and (rescanned is None or item.block < rescanned):
                rescanned = item.block  # a block scanned again after a reorganisation
        if rescanned is not None:
            self._forget(chain_id, chain, lambda block: block >= rescanned)
        chain.head = max(head, chain.head)
        floor = chain.head - self._window
        if floor > chain.floor:
            aged = bisect.bisect_right(chain.blocks, floor)
            chain.base.apply(chain.events[:aged])
            del chain.events[:aged], chain.blocks[:aged]
            chain.floor = floor
            self._forget(chain_id, chain, lambda block: block < floor)

    def head(self, chain_id: int) -> int | None:
        """The last block replayed on `chain_id`, or None if none was."""
        chain = self._chains.get(chain_id)
        return chain.head if chain is not None else None

    def records_at(self, chain_id: int, block: int) -> Mapping[str, TrackRecord] | None:
        """Every provider's record as of `block`: exactly `track_records` of the chain's events
        up to and including it. None while the replay has not reached it (and the feed polls at
        once), or when it is older than the window (`RECORD_WINDOW_BLOCKS` behind the head):
        then no poll would help, and a job naming it does not match."""
        chain = self._chains.get(chain_id)
        if chain is None or block > chain.head:
            self._want(chain_id)
            return None
        if block < chain.floor:
            return None
        key = (chain_id, block)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        start = max((at for at in chain.folds if at <= block), default=None)
        if start is None:
            start, fold = chain.floor, chain.base.copy()
        else:
            chain.folds.move_to_end(start)
            fold = chain.folds[start].copy()
        fold.apply(chain.events[bisect.bisect_right(chain.blocks, start):
                                bisect.bisect_right(chain.blocks, block)])
        chain.folds[block] = fold
        if len(chain.folds) > RECORD_FOLDS:
            chain.folds.popitem(last=False)
        records = self._cache[key] = fold.records()
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

    def _forget(self, chain_id: int, chain: _ChainRecords, which: Callable[[int], bool]) -> None:
        """Drop the folds and cached records of `chain` at the blocks `which` picks."""
        for block in [block for block in chain.folds if which(block)]:
            del chain.folds[block]
        for key in [key for key in self._cache if key[0] == chain_id and which(key[1])]:
            del self._cache[key]

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
