"""The record feed: records at any block in its window equal a replay of every event up to it,
while it keeps only the window's events and a fold of the older ones."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lilypad_p2p.chain import RecordFeed
from lilypad_p2p.market import SettlementEvent, TrackRecord, track_records

CHAIN = 31337
PROVIDERS = ["0x" + f"{n:02x}" * 20 for n in range(1, 5)]
P = PROVIDERS[0]


def opened(deal: int, block: int, provider: str = P) -> SettlementEvent:
    return SettlementEvent("DealOpened", deal.to_bytes(32, "big"), block, provider=provider)


def settled(deal: int, block: int) -> SettlementEvent:
    return SettlementEvent("DealSettled", deal.to_bytes(32, "big"), block)


def slashed(deal: int, block: int) -> SettlementEvent:
    return SettlementEvent("DealTimedOut", deal.to_bytes(32, "big"), block, status=5)


def test_blocks_older_than_the_window_are_not_answered_nor_polled_for():
    feed = RecordFeed(window_blocks=10)
    feed.add(CHAIN, [opened(1, 5), settled(1, 8), opened(2, 30), slashed(2, 35)], 40)
    assert feed.records_at(CHAIN, 29) is None  # before the floor (block 30)
    assert feed.records_at(CHAIN, 30) == {P: TrackRecord(P, opened=2, settled=1)}
    assert feed.records_at(CHAIN, 40) == {
        P: TrackRecord(P, opened=2, settled=1, missed_deadline=1, last_slash_block=35)}
    feed.add(CHAIN, [], 46)
    assert feed.records_at(CHAIN, 35) is None  # answered before, aged out since
    assert feed.records_at(CHAIN, 36)[P].slashes == 1


async def test_asking_for_an_aged_block_does_not_wake_the_poll():
    import trio

    feed = RecordFeed(window_blocks=10)
    feed.add(CHAIN, [], 40)
    wanted = feed._wanted[CHAIN] = trio.Event()
    assert feed.records_at(CHAIN, 20) is None and not wanted.is_set()
    assert feed.records_at(CHAIN, 41) is None and wanted.is_set()


def test_an_event_in_a_block_scanned_again_replaces_the_answers_from_it():
    feed = RecordFeed(window_blocks=100)
    feed.add(CHAIN, [opened(1, 10), opened(2, 20)], 30)
    assert feed.records_at(CHAIN, 25)[P].opened == 2
    feed.add(CHAIN, [settled(1, 22)], 30)  # a reorganisation put it below the head
    assert feed.records_at(CHAIN, 25)[P].completed == 1
    assert feed.records_at(CHAIN, 21)[P].completed == 0


def test_an_event_older_than_the_window_is_folded_in_as_it_comes():
    feed = RecordFeed(window_blocks=5)
    feed.add(CHAIN, [opened(1, 10)], 30)
    feed.add(CHAIN, [settled(1, 12)], 30)
    assert feed.records_at(CHAIN, 25)[P].completed == 1


def test_memory_follows_the_window_not_the_history():
    feed = RecordFeed(window_blocks=100)
    for block in range(0, 10_000, 10):
        deal = block // 10
        feed.add(CHAIN, [opened(deal, block + 1), settled(deal, block + 2)], block + 9)
        assert feed.records_at(CHAIN, block + 5) is not None
    chain = feed._chains[CHAIN]
    assert len(chain.events) <= 20 and chain.base.open_deals == 0
    assert feed.records_at(CHAIN, 9_999)[P].completed == 1_000


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[tuple[list[SettlementEvent], int]], int]:
    """Polls as a feed sees them, each the events of the blocks after the last one's head up
    to its own, in chain order, and a window."""
    polls, head, deals = [], -1, 0
    for _ in range(draw(st.integers(1, 12))):
        new_head = head + draw(st.integers(0, 6))  # few blocks: several events in one
        events = []
        for block in sorted(draw(st.lists(st.integers(head + 1, max(head + 1, new_head)),
                                          max_size=10))):
            if block > new_head:
                continue
            kind = draw(st.sampled_from(["open", "open", "reopen", "end", "slash", "other"]))
            if kind in ("open", "reopen") or deals == 0:
                if kind == "open" or deals == 0:
                    deals += 1
                deal = deals if kind == "open" else draw(st.integers(1, deals))
                events.append(opened(deal, block, draw(st.sampled_from(PROVIDERS))))
                continue
            deal = draw(st.integers(1, deals))
            name, field = {"end": ("DealResolved", "outcome"), "slash": ("DealTimedOut", "status"),
                           "other": ("ResultSubmitted", "outcome")}[kind]
            events.append(SettlementEvent(name, deal.to_bytes(32, "big"), block,
                                          **{field: draw(st.integers(1, 7))}))
        polls.append((events, new_head))
        head = new_head
    return polls, draw(st.integers(0, 30))


@given(histories(), st.data())
def test_records_at_any_block_in_the_window_equal_a_replay_up_to_it(history, data):
    """What keeps solvers and clients agreeing: whatever the polls, the window and the blocks
    asked before, records at B are those of every event up to B."""
    polls, window = history
    feed = RecordFeed(window_blocks=window)
    seen: list[SettlementEvent] = []
    for events, head in polls:
        feed.add(CHAIN, events, head)
        seen.extend(events)
        floor = head - window
        for block in data.draw(st.lists(st.integers(max(0, floor - 3), head + 2), max_size=6)):
            got = feed.records_at(CHAIN, block)
            if block > head or block < floor:
                assert got is None
            else:
                assert got == track_records(e for e in seen if e.block <= block), block
