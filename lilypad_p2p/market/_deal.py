"""The deal state machine: one table of legal moves per side, every timeout named.

Pure (h11 `_state.py` style): `advance(record, event, now_ms)` returns the next record or
raises `IllegalTransition`; `due_timeout(record)` says which timeout is armed and when it
fires. The roles persist every record *before* acting on it, so a restarted node resumes
each open deal from its last persisted phase (see `roles/_client.py`, `roles/_provider.py`).

A deal is seen from two sides. The job creator (`Side.CLIENT`) walks

    offered -> matched -> agreed -> open -> running -> accepted -> settled

and the provider (`Side.PROVIDER`)

    agreed -> open -> running -> result_ready -> accepted -> settled
                                              \\-> result_submitted -> timed_out (paid)

with exits to `cancelled` (nothing on chain), `timed_out` (an on-chain timeout was claimed)
and, for the client, `rejected` (the outputs failed verification and no mediation is set up)
or `disputed` -> `resolved` (outputs that fail verification, a spot check, or the
user's `dispute`; the consortium's k-of-n verdict is applied on chain).
`docs/deal-states.md` is generated from `TRANSITIONS` by `state_diagram()`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from lilypad_p2p.errors import LilypadError


class Side(enum.StrEnum):
    CLIENT = "client"
    PROVIDER = "provider"


class Phase(enum.StrEnum):
    OFFERED = "offered"  # client: job offer posted, waiting for a match
    MATCHED = "matched"  # client: resource offer chosen, deal sent for countersigning
    AGREED = "agreed"  # both parties signed; not known to be on chain yet
    OPEN = "open"  # openDeal mined: money locked
    RUNNING = "running"  # inputs delivered; the provider executes
    RESULT_READY = "result_ready"  # provider: result committed, waiting for the acceptance
    RESULT_SUBMITTED = "result_submitted"  # provider: result put on chain (client was silent)
    ACCEPTED = "accepted"  # the job creator signed the Acceptance
    REJECTED = "rejected"  # client: outputs did not match the committed hash
    DISPUTED = "disputed"  # client: dispute opened; the consortium re-runs the job
    RESOLVED = "resolved"  # a k-of-n verdict was applied on chain
    SETTLED = "settled"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_PHASES


FINAL_PHASES = frozenset(
    {Phase.SETTLED, Phase.TIMED_OUT, Phase.CANCELLED, Phase.REJECTED, Phase.RESOLVED}
)


class Event(enum.StrEnum):
    MATCH_FOUND = "match_found"
    COUNTERSIGNED = "countersigned"
    REFUSED = "refused"
    OPENED = "opened"
    INPUTS_DELIVERED = "inputs_delivered"
    RESULT_COMMITTED = "result_committed"
    RESULT_VERIFIED = "result_verified"
    RESULT_INVALID = "result_invalid"
    ACCEPTANCE_RECEIVED = "acceptance_received"
    RESULT_SUBMITTED = "result_submitted"
    SETTLED = "settled"
    TIMEOUT_CLAIMED = "timeout_claimed"
    TIMED_OUT = "timed_out"  # a timeout with nothing at stake on chain
    CANCEL = "cancel"
    DISPUTE = "dispute"  # bad outputs, a spot check, or the user asked
    RESOLVED = "resolved"


class Timeout(enum.StrEnum):
    """Every timeout a deal can hit; `due_timeout` says which is armed in which phase."""

    MATCH = "match"  # no usable proposal in time: cancel (nothing on chain)
    AGREEMENT = "agreement"  # not countersigned in time: match again; not opened: cancel
    RESULT_DEADLINE = "result_deadline"  # client: no result by the deal's deadline: claim refund
    ACCEPTANCE = "acceptance"  # provider: no acceptance: submit the result on chain
    ACCEPTANCE_WINDOW = "acceptance_window"  # provider: window over on chain: claim payment
    SETTLEMENT = "settlement"  # client: accepted but the provider did not settle: settle it


# Defaults in milliseconds; the roles take them from NodeConfig (overridable for tests).
MATCH_TIMEOUT_MS = 60_000
AGREEMENT_TIMEOUT_MS = 30_000
ACCEPTANCE_TIMEOUT_MS = 30_000
SETTLEMENT_TIMEOUT_MS = 30_000


@dataclass(frozen=True, slots=True)
class Timeouts:
    match_ms: int = MATCH_TIMEOUT_MS
    agreement_ms: int = AGREEMENT_TIMEOUT_MS
    acceptance_ms: int = ACCEPTANCE_TIMEOUT_MS
    settlement_ms: int = SETTLEMENT_TIMEOUT_MS

    def __post_init__(self) -> None:
        for name in ("match_ms", "agreement_ms", "acceptance_ms", "settlement_ms"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")


DEFAULT_TIMEOUTS = Timeouts()


class DealError(LilypadError):
    """Root of the deal subtree."""


class IllegalTransition(DealError):
    """An event that the deal's current phase does not allow (a local bug or a replay)."""


_P, _E = Phase, Event
_COMMON_EXITS: dict[tuple[Phase, Event], Phase] = {
    (_P.AGREED, _E.OPENED): _P.OPEN,
    (_P.AGREED, _E.CANCEL): _P.CANCELLED,
    (_P.AGREED, _E.TIMED_OUT): _P.CANCELLED,
    (_P.OPEN, _E.INPUTS_DELIVERED): _P.RUNNING,
    (_P.OPEN, _E.TIMEOUT_CLAIMED): _P.TIMED_OUT,
    (_P.RUNNING, _E.TIMEOUT_CLAIMED): _P.TIMED_OUT,
    (_P.ACCEPTED, _E.SETTLED): _P.SETTLED,
}

TRANSITIONS: dict[Side, dict[tuple[Phase, Event], Phase]] = {
    Side.CLIENT: {
        **_COMMON_EXITS,
        (_P.OFFERED, _E.MATCH_FOUND): _P.MATCHED,
        (_P.OFFERED, _E.TIMED_OUT): _P.CANCELLED,
        (_P.OFFERED, _E.CANCEL): _P.CANCELLED,
        (_P.MATCHED, _E.COUNTERSIGNED): _P.AGREED,
        # Refused or unanswered: back to waiting for another match.
        (_P.MATCHED, _E.REFUSED): _P.OFFERED,
        (_P.OPEN, _E.RESULT_VERIFIED): _P.ACCEPTED,
        (_P.OPEN, _E.RESULT_INVALID): _P.REJECTED,
        (_P.RUNNING, _E.RESULT_VERIFIED): _P.ACCEPTED,
        (_P.RUNNING, _E.RESULT_INVALID): _P.REJECTED,
        # The provider may settle on chain before we hear of it: a settled deal is settled.
        (_P.OPEN, _E.SETTLED): _P.SETTLED,
        (_P.RUNNING, _E.SETTLED): _P.SETTLED,
        # Mediation. From accepted only until the provider settles: the contract
        # disputes a result that is recorded and not yet settled.
        (_P.OPEN, _E.DISPUTE): _P.DISPUTED,
        (_P.RUNNING, _E.DISPUTE): _P.DISPUTED,
        (_P.ACCEPTED, _E.DISPUTE): _P.DISPUTED,
        (_P.DISPUTED, _E.RESOLVED): _P.RESOLVED,
        (_P.DISPUTED, _E.SETTLED): _P.SETTLED,
        (_P.DISPUTED, _E.TIMEOUT_CLAIMED): _P.TIMED_OUT,
        # A spot check the consortium agreed with off chain: accepted, never disputed on chain.
        (_P.DISPUTED, _E.RESULT_VERIFIED): _P.ACCEPTED,
    },
    Side.PROVIDER: {
        **_COMMON_EXITS,
        (_P.OPEN, _E.RESULT_COMMITTED): _P.RESULT_READY,
        (_P.RUNNING, _E.RESULT_COMMITTED): _P.RESULT_READY,
        (_P.RESULT_READY, _E.ACCEPTANCE_RECEIVED): _P.ACCEPTED,
        (_P.RESULT_READY, _E.RESULT_SUBMITTED): _P.RESULT_SUBMITTED,
        (_P.RESULT_READY, _E.SETTLED): _P.SETTLED,
        (_P.RESULT_READY, _E.TIMEOUT_CLAIMED): _P.TIMED_OUT,
        (_P.RESULT_SUBMITTED, _E.ACCEPTANCE_RECEIVED): _P.ACCEPTED,
        (_P.RESULT_SUBMITTED, _E.TIMEOUT_CLAIMED): _P.TIMED_OUT,
        (_P.RESULT_SUBMITTED, _E.SETTLED): _P.SETTLED,
        (_P.OPEN, _E.SETTLED): _P.SETTLED,
        (_P.RUNNING, _E.SETTLED): _P.SETTLED,
        # The job creator disputed the recorded result and a consortium ruled.
        (_P.RESULT_READY, _E.RESOLVED): _P.RESOLVED,
        (_P.RESULT_SUBMITTED, _E.RESOLVED): _P.RESOLVED,
        (_P.ACCEPTED, _E.RESOLVED): _P.RESOLVED,
    },
}


@dataclass(frozen=True, slots=True)
class DealRecord:
    """One deal as one side sees it: what the state machine needs, nothing on the wire.

    `key` is the job offer's CID (client) or the dealId hex (provider); `phase_since_ms` is
    when the current phase began; `result_deadline_ms` comes from the deal once it is agreed.
    """

    key: str
    side: Side
    phase: Phase
    phase_since_ms: int
    created_ms: int
    expires_ms: int  # the job offer's expiry: no match is taken after it
    result_deadline_ms: int | None = None

    def __post_init__(self) -> None:
        if not self.key:
            raise ValueError("key must not be empty")
        if self.side is Side.PROVIDER and self.phase in (Phase.OFFERED, Phase.MATCHED):
            raise ValueError(f"a provider's deal starts at {Phase.AGREED}")
        if self.phase_since_ms < 0 or self.created_ms < 0:
            raise ValueError("timestamps must be >= 0")


def new_client_deal(key: str, *, now_ms: int, expires_ms: int) -> DealRecord:
    return DealRecord(key, Side.CLIENT, Phase.OFFERED, now_ms, now_ms, expires_ms)


def new_provider_deal(key: str, *, now_ms: int, result_deadline_ms: int) -> DealRecord:
    return DealRecord(
        key, Side.PROVIDER, Phase.AGREED, now_ms, now_ms, result_deadline_ms, result_deadline_ms
    )


def next_phase(side: Side, phase: Phase, event: Event) -> Phase:
    """The phase `event` leads to from `phase`; IllegalTransition if the table has no such move."""
    try:
        return TRANSITIONS[side][(phase, event)]
    except KeyError:
        raise IllegalTransition(f"{side} deal in {phase}: {event} is not allowed") from None


def advance(
    record: DealRecord, event: Event, now_ms: int, *, result_deadline_ms: int | None = None
) -> DealRecord:
    """The record after `event` at `now_ms` (the deal's deadline is learnt on agreement)."""
    phase = next_phase(record.side, record.phase, event)
    deadline = record.result_deadline_ms if result_deadline_ms is None else result_deadline_ms
    if phase is Phase.AGREED and deadline is None:
        raise IllegalTransition("an agreed deal needs its result deadline")
    return replace(record, phase=phase, phase_since_ms=now_ms, result_deadline_ms=deadline)


@dataclass(frozen=True, slots=True)
class Due:
    """The timeout armed for a record: which, when it fires, and the event it leads to."""

    timeout: Timeout
    at_ms: int
    event: Event


def due_timeout(
    record: DealRecord, timeouts: Timeouts, acceptance_window_ms: int = 0
) -> Due | None:
    """The timeout armed in the record's phase, or None (final phases, or no clock applies).

    `acceptance_window_ms` is the deal's on-chain acceptance window (provider side only).
    """
    side, phase, since = record.side, record.phase, record.phase_since_ms
    deadline = record.result_deadline_ms
    if phase is Phase.OFFERED:
        match_due = min(since + timeouts.match_ms, record.expires_ms)
        return Due(Timeout.MATCH, match_due, Event.TIMED_OUT)
    if phase is Phase.MATCHED:
        # Unanswered: nothing is signed by the provider yet, so the job goes back to be
        # matched elsewhere (until its own expiry) instead of being cancelled.
        return Due(Timeout.AGREEMENT, since + timeouts.agreement_ms, Event.REFUSED)
    if phase is Phase.AGREED:
        # The client may still open it on chain; after the deadline nobody can.
        assert deadline is not None
        return Due(Timeout.AGREEMENT, min(since + timeouts.agreement_ms, deadline), Event.TIMED_OUT)
    if phase in (Phase.OPEN, Phase.RUNNING) and side is Side.CLIENT:
        assert deadline is not None
        # The contract refuses the claim until a block is strictly later than the deadline.
        return Due(Timeout.RESULT_DEADLINE, deadline + 1000, Event.TIMEOUT_CLAIMED)
    if phase is Phase.RESULT_READY and side is Side.PROVIDER:
        return Due(Timeout.ACCEPTANCE, since + timeouts.acceptance_ms, Event.RESULT_SUBMITTED)
    if phase is Phase.RESULT_SUBMITTED and side is Side.PROVIDER:
        return Due(Timeout.ACCEPTANCE_WINDOW, since + acceptance_window_ms + 1000,
                   Event.TIMEOUT_CLAIMED)
    if phase is Phase.ACCEPTED and side is Side.CLIENT:
        return Due(Timeout.SETTLEMENT, since + timeouts.settlement_ms, Event.SETTLED)
    return None


def state_diagram() -> str:
    """A Markdown page with one Mermaid diagram per side, drawn from `TRANSITIONS`."""
    lines = [
        "# Deal states",
        "",
        "Generated by `python -m lilypad_p2p.market._deal` from `TRANSITIONS` in",
        "`lilypad_p2p/market/_deal.py`; do not edit by hand.",
    ]
    for side, table in TRANSITIONS.items():
        lines += ["", f"## {side} side", "", "```mermaid", "stateDiagram-v2"]
        for (phase, event), target in sorted(table.items()):
            lines.append(f"    {phase} --> {target}: {event}")
        lines += ["```"]
    lines += ["", "## Timeouts", "", "| phase | side | timeout | then |", "|---|---|---|---|"]
    rows = [
        ("offered", "client", Timeout.MATCH, "cancelled"),
        ("matched", "client", Timeout.AGREEMENT, "cancelled"),
        ("agreed", "both", Timeout.AGREEMENT, "cancelled (client: open on chain first if not)"),
        ("open/running", "client", Timeout.RESULT_DEADLINE, "claimTimeout (refund) -> timed_out"),
        ("result_ready", "provider", Timeout.ACCEPTANCE, "submitResult -> result_submitted"),
        ("result_submitted", "provider", Timeout.ACCEPTANCE_WINDOW,
         "claimTimeout (paid) -> timed_out"),
        ("accepted", "client", Timeout.SETTLEMENT, "settle it ourselves -> settled"),
        ("disputed", "client", "mediation window (on chain)",
         "no k-of-n quorum in time: claimTimeout (price split) -> timed_out"),
    ]
    lines += [f"| {p} | {s} | {t} | {then} |" for p, s, t, then in rows]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(state_diagram(), end="")
