"""What following a chain's track records costs a node: the feed's memory, and records at a block.

    python benchmarks/record_feed.py [--events 10000,100000,1000000] [--rounds 5]

Every node with a market role follows the settlement contract's events, the whole network's.
This feeds a `RecordFeed` a synthetic history of `--events` events (`--providers` providers,
one deal opened a block on average, each ending 1 to 100 blocks later: settled mostly, some
slashed, timed out or ruled on), as its polls deliver them (`--blocks-per-poll` blocks each),
then measures:

- `memory`: what the feed holds after the history (tracemalloc, in a pass of its own), and
  what it keeps: the events in its window, the open deals of its fold; `add`: the CPU its
  `add`s took over the history (the first poll of a node that starts is all of it);
- `first query`: records at the head, the first time one is asked for;
- `new block`: a poll of one more `--blocks-per-poll` blocks, then records at the new head, as
  each job posted at a new head asks (CPU ms, median of `--rounds`);
- `older block`: records at a block 1,000 below the head, not asked for before.

The `replay` arm is the feed as it was: every event kept, and records at a block the
`track_records` of every event up to it. Run it on an older checkout through PYTHONPATH to
measure that code's own feed (its `RecordFeed` is then the replay, with its own fold). Writes
benchmarks/results/record_feed.json (with --label, merged under it).
"""

from __future__ import annotations

import argparse
import bisect
import gc
import json
import os
import random
import statistics
import time
import tracemalloc
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from lilypad_p2p.chain import RecordFeed
from lilypad_p2p.market import SettlementEvent, TrackRecord, track_records

RESULTS = Path(__file__).parent / "results" / "record_feed.json"
CHAIN = 31337
# How deals end: (event, status, outcome, weight).
ENDINGS = (("DealSettled", None, None, 80), ("DealTimedOut", 6, None, 8),
           ("DealTimedOut", 5, None, 4), ("DealTimedOut", 7, None, 1),
           ("DealResolved", None, 1, 4), ("DealResolved", None, 2, 2),
           ("DealResolved", None, 3, 1))


class Feed(Protocol):
    def add(self, chain_id: int, events: list[SettlementEvent], head: int) -> None: ...
    def records_at(self, chain_id: int, block: int) -> Mapping[str, TrackRecord] | None: ...


class Replay:
    """The feed before its window: every event kept, every new block a replay from the first."""

    def __init__(self) -> None:
        self._events: list[SettlementEvent] = []
        self._blocks: list[int] = []
        self._head = -1
        self._cache: dict[int, Mapping[str, TrackRecord]] = {}

    def add(self, chain_id: int, events: list[SettlementEvent], head: int) -> None:
        for item in events:
            self._events.append(item)
            self._blocks.append(item.block)
        self._head = max(head, self._head)

    def records_at(self, chain_id: int, block: int) -> Mapping[str, TrackRecord] | None:
        if block > self._head:
            return None
        if block not in self._cache:
            upto = bisect.bisect_right(self._blocks, block)
            self._cache[block] = track_records(self._events[:upto])
        return self._cache[block]


def history(providers: int, blocks_per_poll: int,
            seed: int = 1) -> Iterator[tuple[list[SettlementEvent], int]]:
    """Polls of a synthetic history, as many as asked: each the events of its blocks in chain
    order, and its last block."""
    rng = random.Random(seed)
    addresses = ["0x" + rng.randbytes(20).hex() for _ in range(providers)]
    endings = [ending[:3] for ending in ENDINGS for _ in range(ending[3])]
    due: dict[int, list[tuple[bytes, tuple[str, int | None, int | None]]]] = {}
    last, deal = 0, 0
    while True:
        poll: list[SettlementEvent] = []
        for block in range(last + 1, last + 1 + blocks_per_poll):
            for deal_id, (name, status, outcome) in due.pop(block, ()):
                poll.append(SettlementEvent(name, deal_id, block, status=status,
                                            outcome=outcome))
            for _ in range(rng.choice((0, 1, 1, 2))):  # one deal opened a block on average
                deal += 1
                deal_id = deal.to_bytes(32, "big")
                poll.append(SettlementEvent("DealOpened", deal_id, block,
                                            provider=rng.choice(addresses)))
                due.setdefault(block + rng.randint(1, 100), []).append(
                    (deal_id, rng.choice(endings)))
        last += blocks_per_poll
        yield poll, last


def cpu_ms(work: Callable[[], Any]) -> tuple[float, Any]:
    started = time.process_time()
    result = work()
    return round((time.process_time() - started) * 1000, 3), result


def fed(make: Callable[[], Feed], polls: Iterator[tuple[list[SettlementEvent], int]],
        events: int) -> tuple[Feed, int, int, float]:
    """A feed given `events` events of `polls`: the feed, its head, the events given, and the
    CPU ms its `add`s took."""
    feed, head, given, spent = make(), -1, 0, 0.0
    for poll, head in polls:
        started = time.process_time()
        feed.add(CHAIN, poll, head)
        spent += time.process_time() - started
        given += len(poll)
        if given >= events:
            break
    return feed, head, given, round(spent * 1000, 3)


def measure(name: str, make: Callable[[], Feed], args: argparse.Namespace,
            events: int) -> dict[str, Any]:
    gc.collect()
    tracemalloc.start()
    polls = history(args.providers, args.blocks_per_poll)
    feed, head, given, _ = fed(make, polls, events)
    del polls  # its pending endings are the chain's, not the feed's
    gc.collect()
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    kept = getattr(feed, "_chains", {}).get(CHAIN)
    row: dict[str, Any] = {"events": given, "head": head, "memory_mb": round(held / 2**20, 2)}
    if kept is not None:
        row.update(kept_events=len(kept.events), open_deals=kept.base.open_deals)
    del feed, kept
    gc.collect()

    polls = history(args.providers, args.blocks_per_poll)
    feed, head, _, row["add_ms"] = fed(make, polls, events)
    row["first_query_ms"], first = cpu_ms(lambda: feed.records_at(CHAIN, head))
    truth = first
    times = []
    for _ in range(args.rounds):
        poll, head = next(polls)
        feed.add(CHAIN, poll, head)
        spent, truth = cpu_ms(lambda h=head: feed.records_at(CHAIN, h))  # type: ignore[misc]
        times.append(spent)
    row["new_block_ms"] = round(statistics.median(times), 3)
    row["older_block_ms"], _ = cpu_ms(lambda: feed.records_at(CHAIN, head - 1000))
    row["providers_with_records"] = len(truth or {})
    row["_answer"] = truth
    print(f"  {name:>7}: {given:>9,} events: memory {row['memory_mb']:8.2f} MB; "
          f"records at: first {row['first_query_ms']:9.2f} ms, new block "
          f"{row['new_block_ms']:9.3f} ms, 1,000 blocks back {row['older_block_ms']:9.2f} ms"
          + (f"; keeps {row['kept_events']:,} events, {row['open_deals']:,} open deals"
             if "kept_events" in row else ""))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default="10000,100000,1000000")
    parser.add_argument("--providers", type=int, default=300)
    parser.add_argument("--blocks-per-poll", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--label", default="current")
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    rows: dict[str, Any] = {}
    print(f"{args.label}: {args.providers} providers, one deal a block, "
          f"polls of {args.blocks_per_poll} blocks (CPU ms)")
    for events in (int(n) for n in args.events.split(",")):
        after = measure("feed", RecordFeed, args, events)
        before = measure("replay", Replay, args, events)
        # Solvers and clients must agree whichever way the records were computed.
        assert after.pop("_answer") == before.pop("_answer")
        rows[str(events)] = {"feed": after, "replay": before}
    rows.update(date=datetime.now(UTC).isoformat(timespec="minutes"), cpus=os.cpu_count(),
                load_average_1m={"start": load_start, "end": os.getloadavg()[0]})
    saved = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    saved[args.label] = rows
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(saved, indent=2) + "\n")


if __name__ == "__main__":
    main()
