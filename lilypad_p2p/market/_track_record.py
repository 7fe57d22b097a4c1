"""Providers' track records, derived from the settlement contract's events alone.

A record needs no new transaction and no trusted party: anyone who replays a chain's
`DealOpened`, `DealSettled`, `DealTimedOut` and `DealResolved` events gets the same records
(per chain: a deal ID is only unique on its own chain and contract). Events of a deal whose
`DealOpened` was not seen (a replay that started late) are ignored, so a partial replay
undercounts and never misattributes.

What counts against a provider is what the contract itself punishes: a result deadline
missed (`TimedOutNoResult`: its collateral went to the job creator) and a verdict against it
(`ProviderWrong`). Both are "slashes"; the block of the latest is kept so that a client can
skip providers slashed recently.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# The settlement contract's `Status` and `Outcome` enums (contracts/src/LilypadSettlement.sol).
STATUS_TIMED_OUT_NO_RESULT = 5
STATUS_TIMED_OUT_ACCEPTANCE = 6
STATUS_TIMED_OUT_MEDIATION = 7
OUTCOME_PROVIDER_CORRECT = 1
OUTCOME_PROVIDER_WRONG = 2
OUTCOME_NON_DETERMINISTIC = 3


@dataclass(frozen=True, slots=True)
class SettlementEvent:
    """The part of a settlement event a track record needs.

    `provider` is set on `DealOpened`; `status` on `DealTimedOut`; `outcome` on `DealResolved`.
    """

    name: str
    deal_id: bytes
    block: int
    provider: str | None = None
    status: int | None = None
    outcome: int | None = None


@dataclass(frozen=True, slots=True)
class TrackRecord:
    """One provider's deals on one chain, by how they ended."""

    provider: str
    opened: int = 0
    settled: int = 0  # accepted by the job creator
    paid_unanswered: int = 0  # result posted, job creator silent: paid at the window's end
    missed_deadline: int = 0  # no result by the deadline: collateral lost
    ruled_correct: int = 0
    ruled_wrong: int = 0  # collateral lost
    non_deterministic: int = 0
    mediation_lapsed: int = 0  # mediators silent: price split, collateral back
    last_slash_block: int | None = None

    @property
    def completed(self) -> int:
        """Deals that ended with the provider paid for a result nobody ruled wrong."""
        return self.settled + self.paid_unanswered + self.ruled_correct

    @property
    def slashes(self) -> int:
        return self.missed_deadline + self.ruled_wrong

    @property
    def in_progress(self) -> int:
        ended = self.completed + self.slashes + self.non_deterministic + self.mediation_lapsed
        return self.opened - ended


_ENDING_FIELD = {
    ("DealSettled", None): "settled",
    ("DealTimedOut", STATUS_TIMED_OUT_NO_RESULT): "missed_deadline",
    ("DealTimedOut", STATUS_TIMED_OUT_ACCEPTANCE): "paid_unanswered",
    ("DealTimedOut", STATUS_TIMED_OUT_MEDIATION): "mediation_lapsed",
    ("DealResolved", OUTCOME_PROVIDER_CORRECT): "ruled_correct",
    ("DealResolved", OUTCOME_PROVIDER_WRONG): "ruled_wrong",
    ("DealResolved", OUTCOME_NON_DETERMINISTIC): "non_deterministic",
}
_SLASHES = {"missed_deadline", "ruled_wrong"}


def _ending(event: SettlementEvent) -> str | None:
    if event.name == "DealSettled":
        return _ENDING_FIELD[("DealSettled", None)]
    if event.name == "DealTimedOut":
        return _ENDING_FIELD.get(("DealTimedOut", event.status))
    if event.name == "DealResolved":
        return _ENDING_FIELD.get(("DealResolved", event.outcome))
    return None


def track_records(events: Iterable[SettlementEvent]) -> dict[str, TrackRecord]:
    """Every provider's record from `events` in chain order; keyed by checksummed address."""
    provider_of: dict[bytes, str] = {}
    ended: set[bytes] = set()
    records: dict[str, TrackRecord] = {}
    for event in events:
        if event.name == "DealOpened" and event.provider is not None:
            if event.deal_id in provider_of:
                continue
            provider_of[event.deal_id] = event.provider
            record = records.get(event.provider) or TrackRecord(event.provider)
            records[event.provider] = dataclasses.replace(record, opened=record.opened + 1)
            continue
        field = _ending(event)
        provider = provider_of.get(event.deal_id)
        if field is None or provider is None or event.deal_id in ended:
            continue
        ended.add(event.deal_id)
        record = records[provider]
        changes: dict[str, Any] = {field: getattr(record, field) + 1}  # counters named at run time
        if field in _SLASHES:
            changes["last_slash_block"] = max(event.block, record.last_slash_block or 0)
        records[provider] = dataclasses.replace(record, **changes)
    return records


@dataclass(frozen=True, slots=True)
class RecordRequirement:
    """What a client asks of a provider's record before dealing with it.

    `min_completed`: deals completed at least; 0 admits newcomers (the collateral rule still
    protects the client). `slash_free_blocks`: no slash within this many blocks of the head.
    """

    min_completed: int = 0
    slash_free_blocks: int = 0

    def __post_init__(self) -> None:
        for name in ("min_completed", "slash_free_blocks"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")

    def refusal(self, record: TrackRecord | None, head_block: int) -> str | None:
        """Why `record` does not meet the requirement (a short reason), or None if it does."""
        completed = record.completed if record is not None else 0
        if completed < self.min_completed:
            return f"{completed} completed deals, fewer than the {self.min_completed} required"
        if self.slash_free_blocks and record is not None and record.last_slash_block is not None:
            age = head_block - record.last_slash_block
            if age < self.slash_free_blocks:
                return f"slashed {age} blocks ago (within {self.slash_free_blocks})"
        return None
