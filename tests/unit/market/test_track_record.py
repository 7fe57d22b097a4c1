"""Track records from a recorded settlement event log (pure), and the fold they are made by."""

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lilypad_p2p.market import (
    RecordFold,
    RecordRequirement,
    SettlementEvent,
    TrackRecord,
    track_records,
)

A, B = "0x" + "aa" * 20, "0x" + "bb" * 20


def opened(n: int, provider: str, block: int) -> SettlementEvent:
    return SettlementEvent("DealOpened", bytes([n]) * 32, block, provider=provider)


def ended(n: int, name: str, block: int, **kw: int) -> SettlementEvent:
    return SettlementEvent(name, bytes([n]) * 32, block, **kw)


LOG = [
    opened(1, A, 10), opened(2, A, 10), opened(3, A, 11), opened(4, B, 11), opened(5, A, 12),
    opened(6, B, 12), opened(7, B, 13),
    SettlementEvent("ResultSubmitted", bytes([2]) * 32, 13),  # not an ending
    ended(1, "DealSettled", 14),
    ended(2, "DealTimedOut", 20, status=6),  # job creator silent: provider paid
    ended(3, "DealResolved", 21, outcome=2),  # ruled wrong: slashed
    ended(4, "DealTimedOut", 22, status=5),  # no result: slashed
    ended(5, "DealResolved", 23, outcome=1),
    ended(6, "DealResolved", 24, outcome=3),
    ended(6, "DealSettled", 25),  # a deal ends once: a second ending is ignored
    ended(9, "DealSettled", 26),  # opened before the replay started: ignored
    opened(7, A, 27),  # a second DealOpened for one ID cannot move the deal
]


def test_records_from_a_recorded_log():
    records = track_records(LOG)
    assert list(records) == [A, B]  # in the order they first dealt
    assert records[A] == TrackRecord(A, opened=4, settled=1, paid_unanswered=1, ruled_wrong=1,
                                     ruled_correct=1, last_slash_block=21)
    assert records[B] == TrackRecord(B, opened=3, missed_deadline=1, non_deterministic=1,
                                     last_slash_block=22)
    assert (records[A].completed, records[A].slashes, records[A].in_progress) == (3, 1, 0)
    assert (records[B].completed, records[B].slashes, records[B].in_progress) == (0, 1, 1)


def test_any_replay_of_the_same_log_agrees():
    assert track_records(LOG) == track_records(list(LOG))
    assert track_records([]) == {}


def test_requirements():
    records = track_records(LOG)
    newcomers_welcome = RecordRequirement()
    assert newcomers_welcome.refusal(None, head_block=100) is None
    assert newcomers_welcome.refusal(records[B], head_block=100) is None
    proven = RecordRequirement(min_completed=2)
    assert proven.refusal(None, 100) == "0 completed deals, fewer than the 2 required"
    assert proven.refusal(records[A], 100) is None
    clean = RecordRequirement(slash_free_blocks=50)
    assert clean.refusal(records[A], head_block=60) == "slashed 39 blocks ago (within 50)"
    assert clean.refusal(records[A], head_block=71) is None
    with pytest.raises(ValueError, match="min_completed"):
        RecordRequirement(min_completed=-1)


def test_a_deal_opened_again_after_it_ended_counts_anew():
    """The fold forgets ended deals (its state is the open ones), so a DealOpened of an ended
    deal is a new deal; the contract never emits one (`DealAlreadyOpened`)."""
    log = [opened(1, A, 10), ended(1, "DealSettled", 11), opened(1, B, 12)]
    assert track_records(log) == {A: TrackRecord(A, opened=1, settled=1),
                                  B: TrackRecord(B, opened=1)}


def remembering_every_deal(events: list[SettlementEvent]) -> dict[str, TrackRecord]:
    """The records as first written: every deal ever seen remembered, the state the fold
    bounds."""
    provider_of: dict[bytes, str] = {}
    ended_ids: set[bytes] = set()
    records: dict[str, TrackRecord] = {}
    endings = {("DealSettled", None): "settled", ("DealTimedOut", 5): "missed_deadline",
               ("DealTimedOut", 6): "paid_unanswered", ("DealTimedOut", 7): "mediation_lapsed",
               ("DealResolved", 1): "ruled_correct", ("DealResolved", 2): "ruled_wrong",
               ("DealResolved", 3): "non_deterministic"}
    for event in events:
        if event.name == "DealOpened" and event.provider is not None:
            if event.deal_id in provider_of:
                continue
            provider_of[event.deal_id] = event.provider
            record = records.get(event.provider) or TrackRecord(event.provider)
            records[event.provider] = dataclasses.replace(record, opened=record.opened + 1)
            continue
        detail = event.status if event.name == "DealTimedOut" else event.outcome
        field = endings.get((event.name, detail if event.name != "DealSettled" else None))
        provider = provider_of.get(event.deal_id)
        if field is None or provider is None or event.deal_id in ended_ids:
            continue
        ended_ids.add(event.deal_id)
        record = records[provider]
        changes: dict[str, Any] = {field: getattr(record, field) + 1}
        if field in ("missed_deadline", "ruled_wrong"):
            changes["last_slash_block"] = max(event.block, record.last_slash_block or 0)
        records[provider] = dataclasses.replace(record, **changes)
    return records


@st.composite
def event_logs(draw: st.DrawFn, *, reopen_after_end: bool = True) -> list[SettlementEvent]:
    """Logs in chain order over a few deals and providers: DealOpened (twice for one deal, or
    without a provider), endings of every kind (twice, before the opening, unknown statuses),
    and events that are not endings. Without `reopen_after_end`, no DealOpened follows an
    ending of its deal, as on chain."""
    block, log, ended_ids = 0, [], set()
    for _ in range(draw(st.integers(0, 60))):
        block += draw(st.integers(0, 3))
        deal_id = bytes([draw(st.integers(0, 7))]) * 32
        name = draw(st.sampled_from(["DealOpened", "DealOpened", "DealSettled", "DealTimedOut",
                                     "DealResolved", "ResultSubmitted"]))
        if name == "DealOpened":
            if not reopen_after_end and deal_id in ended_ids:
                continue
            provider = draw(st.sampled_from([A, B, "0x" + "cc" * 20, None]))
            log.append(SettlementEvent(name, deal_id, block, provider=provider))
            continue
        ended_ids.add(deal_id)
        log.append(SettlementEvent(name, deal_id, block, status=draw(st.integers(4, 8)),
                                   outcome=draw(st.integers(0, 4))))
    return log


@given(event_logs(reopen_after_end=False))
def test_the_fold_agrees_with_remembering_every_deal(log):
    assert track_records(log) == remembering_every_deal(log)


@given(event_logs(), st.data())
def test_a_fold_goes_on_from_any_point_and_its_copies_are_independent(log, data):
    cut = data.draw(st.integers(0, len(log)))
    fold = RecordFold()
    fold.apply(log[:cut])
    twin = fold.copy()
    twin.apply(log[cut:])
    assert twin.records() == track_records(log)
    assert fold.records() == track_records(log[:cut])
