"""Track records in matching: a job's record requirement, and ties broken by records.

Every solver must read the same records, so a job names the chain state they are read at: its
`records_block` (a block of its `chain_id`). Records are the replay of settlement events up to
and including that block (`track_records`); any two solvers that replayed that far agree, and a
solver that has not (`RecordsAt` lacks the block) leaves the job out of its matching rather
than guess. A job with `records_block` 0 asks for nothing: records do not count for it.

For a job that names a block:
- the requirement (`requirement_of`) removes the offers of providers whose record fails it;
- among offers of one price, a provider's standing ranks first: proven (at least
  PROVEN_COMPLETED completed deals), then unproven, then slashed within RECENT_SLASH_BLOCKS;
- newcomers still get a chance: in one job of NEWCOMER_SHARE (drawn from the job ID, so every
  solver picks the same jobs) whose client admits newcomers (`min_completed_deals` 0), the
  unproven rank first. A provider starts with no record, so it needs this share or clients
  that ignore records to ever build one; the collateral rule protects the client either way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from lilypad_p2p.market._track_record import RecordRequirement, TrackRecord
from lilypad_p2p.wire import JobOffer

# (chain ID, block) -> providers' records as of that block (checksummed address -> record).
RecordsAt = Mapping[tuple[int, int], Mapping[str, TrackRecord]]

# Completed deals that make a provider proven; slashes this recent make it rank last.
PROVEN_COMPLETED = 3
RECENT_SLASH_BLOCKS = 7200
# One record-ranked job in this many (those whose clients admit newcomers) ranks them first.
NEWCOMER_SHARE = 4

SLASHED, UNPROVEN, PROVEN = 0, 1, 2


def requirement_of(job: JobOffer) -> RecordRequirement | None:
    """The job's record requirement, or None if it has none."""
    if not job.min_completed_deals and not job.slash_free_blocks:
        return None
    return RecordRequirement(job.min_completed_deals, job.slash_free_blocks)


def records_for(job: JobOffer, records: RecordsAt) -> Mapping[str, TrackRecord] | None:
    """The records `job` is matched by; None if records do not count for it or are not known
    at its block (the caller then leaves the job out)."""
    if not job.records_block:
        return None
    return records.get((job.chain_id, job.records_block))


def standing(record: TrackRecord | None, block: int) -> int:
    """SLASHED, UNPROVEN or PROVEN as of `block`."""
    if record is None:
        return UNPROVEN
    slashed_at = record.last_slash_block
    if slashed_at is not None and block - slashed_at < RECENT_SLASH_BLOCKS:
        return SLASHED
    return PROVEN if record.completed >= PROVEN_COMPLETED else UNPROVEN


def is_newcomer_job(job: JobOffer, job_id: str) -> bool:
    """Whether this job ranks the unproven first (module docstring)."""
    if job.min_completed_deals:
        return False
    return hashlib.sha256(job_id.encode()).digest()[0] % NEWCOMER_SHARE == 0


def record_refusal(
    job: JobOffer, provider: str, records: Mapping[str, TrackRecord]
) -> str | None:
    """Why `provider`'s record fails `job`'s requirement, or None (also when it has none)."""
    requirement = requirement_of(job)
    if requirement is None:
        return None
    return requirement.refusal(records.get(provider), job.records_block)


def standing_of(records: Mapping[str, TrackRecord], block: int,
                providers: Iterable[str]) -> dict[str, int]:
    """Each provider's `standing` at `block` (computed once per block a matching reads)."""
    return {provider: standing(records.get(provider), block) for provider in set(providers)}


def order_by_records(
    job: JobOffer,
    job_id: str,
    compatible: list[int],
    providers: list[str],
    rank_key: list[tuple[int, int]],
    records: Mapping[str, TrackRecord],
    standings: Mapping[str, int],
) -> tuple[list[int], dict[int, tuple[int, int, int]]]:
    """`job`'s compatible offers (indices into `providers` and `rank_key`) that its
    requirement admits, in its order of preference, and each one's tie class (offers equally
    good for it share one). `rank_key` is (price, recent load) per offer: price first, then
    standing (`standings`, by provider), then load."""
    if requirement_of(job) is not None:
        compatible = [r for r in compatible if record_refusal(job, providers[r], records) is None]
    newcomers_first = is_newcomer_job(job, job_id)
    tie = {}
    for r in compatible:
        level = standings[providers[r]]
        if newcomers_first and level != SLASHED:
            level = PROVEN if level == UNPROVEN else UNPROVEN
        tie[r] = (rank_key[r][0], PROVEN - level, rank_key[r][1])
    # Stable: offers of one tie class keep the draw order they came in.
    return sorted(compatible, key=tie.__getitem__), tie
