"""The deal state machine: one table of legal moves per side, every timeout named.

Pure (h11 `_state.py` style): `advance(record, event, now_ms)` returns the next record and
the actions it calls for (arm a timeout, or finish the deal), or raises `IllegalTransition`.
`TIMEOUT_RULES` is the one table of timeouts: `due_timeout(record, timeouts)` reads which is
armed and when it fires from it. The roles persist every record *before* acting on it, so a
restarted node resumes each open deal from its last persisted phase (see `roles/_client.py`,
`roles/_provider.py`).

A deal is seen from two sides. The job creator (`Side.CLIENT`) walks

    offered -> matched -> agreed -> open -> running -> accepted -> settled

and the provider (`Side.PROVIDER`)

    agreed -> open -> running -> result_ready -> accepted -> settled
                                              \\-> result_submitted -> timed_out (paid)

with exits to `cancelled` (nothing on chain), `timed_out` (an on-chain timeout was claimed)
and, for the client, `rejected` (the outputs failed verification and no mediation is set up)
or `disputed` -> `resolved` (outputs that fail verification, a spot check, or the
user's `dispute`; the consortium's k-of-n verdict is applied on chain).
`docs/deal-states.md` is generated from `TRANSITIONS` and `TIMEOUT_RULES` by
`python -m lilypad_p2p.market.deal_states` (`_deal_diagram.py`).
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
    AGREED = "agreed"  # both signed; the provider opens it on chain once it has the inputs
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
    AGREEMENT = "agreement"  # not countersigned in time: match again; provider, no inputs: cancel
    RESULT_DEADLINE = "result_deadline"  # client: no result by the deadline: claim the refund
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


# --- timeouts ------------------------------------------------------------------------------

# The contract refuses a timeout claim until a block's timestamp (whole seconds) is strictly
# later than the deadline, so a claim is due one second after it.
CLAIM_MARGIN_MS = 1000


class DealTime(enum.StrEnum):
    """A time of a deal that a timeout counts from or never fires after."""

    PHASE_START = "phase start"
    RESULT_DEADLINE = "the deal's result deadline"
    OFFER_EXPIRY = "the job offer's expiry"

    def of(self, record: DealRecord) -> int:
        """This time of `record`, in milliseconds."""
        if self is DealTime.PHASE_START:
            return record.phase_since_ms
        if self is DealTime.OFFER_EXPIRY:
            return record.expires_ms
        if record.result_deadline_ms is None:
            raise DealError(f"a {record.side} deal in {record.phase} has no result deadline")
        return record.result_deadline_ms


# The one length that is not a node setting: the deal's own on-chain acceptance window.
ACCEPTANCE_WINDOW = "acceptance_window"


@dataclass(frozen=True, slots=True)
class TimeoutRule:
    """One row of `TIMEOUT_RULES`: in `phase` on `side`, `timeout` fires `event` at
    `start` + `length` + `margin_ms`, never after `cap`.

    `length` names a `Timeouts` field (a node setting), `ACCEPTANCE_WINDOW` (the deal's), or
    None (no length: the start itself); `then` says what the role does when it fires.
    """

    side: Side
    phase: Phase
    timeout: Timeout
    event: Event
    then: str
    start: DealTime = DealTime.PHASE_START
    length: str | None = None
    margin_ms: int = 0
    cap: DealTime | None = None

    def __post_init__(self) -> None:
        if self.length not in (*Timeouts.__slots__, ACCEPTANCE_WINDOW, None):
            raise ValueError(f"unknown timeout length {self.length!r}")
        next_phase(self.side, self.phase, self.event)  # the event must be a legal move

    def due(self, record: DealRecord, timeouts: Timeouts, acceptance_window_ms: int) -> Due:
        """When this timeout fires for `record`."""
        at_ms = self.start.of(record) + self.margin_ms
        if self.length == ACCEPTANCE_WINDOW:
            at_ms += acceptance_window_ms
        elif self.length is not None:
            at_ms += getattr(timeouts, self.length)
        if self.cap is not None:
            at_ms = min(at_ms, self.cap.of(record))
        return Due(self.timeout, at_ms, self.event)


_C, _R = Side.CLIENT, Side.PROVIDER
TIMEOUT_RULES: tuple[TimeoutRule, ...] = (
    TimeoutRule(_C, _P.OFFERED, Timeout.MATCH, _E.TIMED_OUT, "cancel and withdraw the job offer",
                length="match_ms", cap=DealTime.OFFER_EXPIRY),
    # Unanswered: nothing is signed by the provider yet, so the job goes back to be matched
    # elsewhere (until its own expiry) instead of being cancelled.
    TimeoutRule(_C, _P.MATCHED, Timeout.AGREEMENT, _E.REFUSED, "match the job again",
                length="agreement_ms"),
    # Only the provider holds both signatures: it opens the deal once our inputs reach it, and
    # could open it until the deadline even after it took none (the contract refuses after).
    TimeoutRule(_C, _P.AGREED, Timeout.RESULT_DEADLINE, _E.TIMED_OUT,
                "cancel, unless the provider opened it on chain (then: opened)",
                start=DealTime.RESULT_DEADLINE, margin_ms=CLAIM_MARGIN_MS),
    TimeoutRule(_R, _P.AGREED, Timeout.AGREEMENT, _E.TIMED_OUT,
                "cancel unless the inputs are arriving or it is open on chain (opened: go on)",
                length="agreement_ms", cap=DealTime.RESULT_DEADLINE),
    TimeoutRule(_C, _P.OPEN, Timeout.RESULT_DEADLINE, _E.TIMEOUT_CLAIMED,
                "claimTimeout on chain: refund plus the provider's collateral",
                start=DealTime.RESULT_DEADLINE, margin_ms=CLAIM_MARGIN_MS),
    TimeoutRule(_C, _P.RUNNING, Timeout.RESULT_DEADLINE, _E.TIMEOUT_CLAIMED,
                "claimTimeout on chain: refund plus the provider's collateral",
                start=DealTime.RESULT_DEADLINE, margin_ms=CLAIM_MARGIN_MS),
    TimeoutRule(_R, _P.RESULT_READY, Timeout.ACCEPTANCE, _E.RESULT_SUBMITTED,
                "submitResult on chain", length="acceptance_ms"),
    TimeoutRule(_R, _P.RESULT_SUBMITTED, Timeout.ACCEPTANCE_WINDOW, _E.TIMEOUT_CLAIMED,
                "claimTimeout on chain: paid", length=ACCEPTANCE_WINDOW,
                margin_ms=CLAIM_MARGIN_MS),
    TimeoutRule(_C, _P.ACCEPTED, Timeout.SETTLEMENT, _E.SETTLED, "settle it ourselves",
                length="settlement_ms"),
)

_RULE_OF: dict[tuple[Side, Phase], TimeoutRule] = {
    (rule.side, rule.phase): rule for rule in TIMEOUT_RULES
}


def timeout_rule(side: Side, phase: Phase) -> TimeoutRule | None:
    """The timeout armed in `phase` on `side`, or None (final phases, or no clock applies)."""
    return _RULE_OF.get((side, phase))


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
    rule = timeout_rule(record.side, record.phase)
    return None if rule is None else rule.due(record, timeouts, acceptance_window_ms)


# --- advancing a deal ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ArmTimeout:
    """Wake the deal when `rule` fires (`due_timeout` says when, from the node's settings)."""

    rule: TimeoutRule


@dataclass(frozen=True, slots=True)
class Finish:
    """The deal is over: forget its wake-ups and delete its spooled files."""


Action = ArmTimeout | Finish


def advance(
    record: DealRecord, event: Event, now_ms: int, *, result_deadline_ms: int | None = None
) -> tuple[DealRecord, tuple[Action, ...]]:
    """The record after `event` at `now_ms`, and what to do about it (persist the record
    first). The deal's deadline is learnt on agreement."""
    phase = next_phase(record.side, record.phase, event)
    deadline = record.result_deadline_ms if result_deadline_ms is None else result_deadline_ms
    if phase is Phase.AGREED and deadline is None:
        raise IllegalTransition("an agreed deal needs its result deadline")
    new = replace(record, phase=phase, phase_since_ms=now_ms, result_deadline_ms=deadline)
    if phase.is_final:
        return new, (Finish(),)
    rule = timeout_rule(record.side, phase)
    return new, (() if rule is None else (ArmTimeout(rule),))
