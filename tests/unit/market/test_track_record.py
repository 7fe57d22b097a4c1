"""Track records from a recorded settlement event log (pure)."""

import pytest

from lilypad_p2p.market import RecordRequirement, SettlementEvent, TrackRecord, track_records

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
    opened(1, B, 27),  # a second DealOpened for one ID cannot move the deal
]


def test_records_from_a_recorded_log():
    records = track_records(LOG)
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
