"""A client's policy on providers' track records, and how its job offers carry it.

The node's setting (`require_provider_deals`, `require_slash_free_blocks`,
`prefer_provider_records`) is the default; `lilypad-p2p run` can override the requirement per
job. A job that asks for anything names `records_block`, the head of its chain when it is
posted: solvers rank and filter providers by their records as of that block, and the client
checks every proposed provider the same way before it signs (a solver's proposal is advice).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from lilypad_p2p.chain import RecordFeed
from lilypad_p2p.errors import LilypadError
from lilypad_p2p.market import RecordsAt
from lilypad_p2p.wire import JobOffer


@dataclass(frozen=True, slots=True)
class RecordPolicy:
    """What a client asks of providers' records (0 and False: nothing)."""

    min_completed_deals: int = 0
    slash_free_blocks: int = 0
    prefer_records: bool = False

    def __post_init__(self) -> None:
        for name in ("min_completed_deals", "slash_free_blocks"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise LilypadError(f"{name} must be a whole number >= 0, got {value!r}")

    def overridden(self, min_completed_deals: int | None,
                   slash_free_blocks: int | None) -> RecordPolicy:
        """This policy with a job's own requirement, where it gives one."""
        return RecordPolicy(
            self.min_completed_deals if min_completed_deals is None else min_completed_deals,
            self.slash_free_blocks if slash_free_blocks is None else slash_free_blocks,
            self.prefer_records,
        )

    @property
    def counts_records(self) -> bool:
        return bool(self.min_completed_deals or self.slash_free_blocks or self.prefer_records)


class ClientRecords:
    """The client's side: the fields its job offers carry, and the records to check them by."""

    def __init__(self, feed: RecordFeed, policy: RecordPolicy) -> None:
        self.feed = feed
        self.policy = policy

    def offer_fields(self, policy: RecordPolicy, head_block: int) -> dict[str, int]:
        """JobOffer fields for `policy`, the job's chain at block `head_block` (its head).

        The chain's head, not our replay's: a job posted right after a deal of ours settled
        counts that deal, and a solver (or this client) whose replay is behind the block
        waits for it before matching (`records not known at the job's block`).
        """
        if not policy.counts_records:
            return {}
        return {"records_block": max(head_block, 1),
                "min_completed_deals": policy.min_completed_deals,
                "slash_free_blocks": policy.slash_free_blocks}

    async def job_fields(self, min_completed_deals: int | None, slash_free_blocks: int | None,
                         head_block: Callable[[], Awaitable[int]]) -> dict[str, int]:
        """`offer_fields` for a job that overrides the node's requirement with these (None:
        the node's); the chain's head, a round trip, is read only for a job that asks."""
        policy = self.policy.overridden(min_completed_deals, slash_free_blocks)
        return self.offer_fields(policy, await head_block()) if policy.counts_records else {}

    def view(self, job: JobOffer) -> RecordsAt | None:
        """The records to check `job`'s proposed providers by; None if it asks for none."""
        if not job.records_block:
            return None
        return self.feed.for_jobs([job])
