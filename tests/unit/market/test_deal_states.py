"""The deal state machine: table, illegal moves, actions, timeouts per phase."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lilypad_p2p.market import (
    FINAL_PHASES,
    TIMEOUT_RULES,
    TRANSITIONS,
    ArmTimeout,
    DealError,
    DealRecord,
    Event,
    Finish,
    IllegalTransition,
    Phase,
    Side,
    Timeout,
    TimeoutRule,
    Timeouts,
    advance,
    due_timeout,
    new_client_deal,
    new_provider_deal,
    timeout_rule,
)

T0 = 1_700_000_000_000
DEADLINE = T0 + 120_000


def _walk(record: DealRecord, *events: Event) -> DealRecord:
    for i, event in enumerate(events):
        record, _ = advance(record, event, T0 + i + 1, result_deadline_ms=DEADLINE)
    return record


def test_client_happy_path_ends_settled() -> None:
    record = new_client_deal("job", now_ms=T0, expires_ms=T0 + 60_000)
    record = _walk(
        record,
        Event.MATCH_FOUND,
        Event.COUNTERSIGNED,
        Event.OPENED,
        Event.INPUTS_DELIVERED,
        Event.RESULT_VERIFIED,
        Event.SETTLED,
    )
    assert record.phase is Phase.SETTLED
    assert record.result_deadline_ms == DEADLINE


def test_provider_happy_and_silent_client_paths() -> None:
    start = new_provider_deal("d", now_ms=T0, result_deadline_ms=DEADLINE)
    happy = _walk(
        start,
        Event.OPENED,
        Event.INPUTS_DELIVERED,
        Event.RESULT_COMMITTED,
        Event.ACCEPTANCE_RECEIVED,
        Event.SETTLED,
    )
    assert happy.phase is Phase.SETTLED
    silent = _walk(
        start,
        Event.OPENED,
        Event.INPUTS_DELIVERED,
        Event.RESULT_COMMITTED,
        Event.RESULT_SUBMITTED,
        Event.TIMEOUT_CLAIMED,
    )
    assert silent.phase is Phase.TIMED_OUT


def test_refused_deal_goes_back_to_waiting_for_a_match() -> None:
    record = _walk(
        new_client_deal("j", now_ms=T0, expires_ms=T0 + 1), Event.MATCH_FOUND, Event.REFUSED
    )
    assert record.phase is Phase.OFFERED


@pytest.mark.parametrize("side", list(Side))
def test_final_phases_allow_nothing(side: Side) -> None:
    for phase, _event in TRANSITIONS[side]:
        assert phase not in FINAL_PHASES


@given(st.sampled_from(list(Side)), st.sampled_from(list(Phase)), st.sampled_from(list(Event)))
def test_every_move_is_in_the_table_or_raises(side: Side, phase: Phase, event: Event) -> None:
    if side is Side.PROVIDER and phase in (Phase.OFFERED, Phase.MATCHED):
        return
    record = DealRecord("k", side, phase, T0, T0, T0 + 1, DEADLINE)
    if (phase, event) in TRANSITIONS[side]:
        assert advance(record, event, T0 + 5)[0].phase is TRANSITIONS[side][(phase, event)]
    else:
        with pytest.raises(IllegalTransition, match=f"{side} deal in {phase}: {event}"):
            advance(record, event, T0 + 5)


_MOVES = [(side, phase, event) for side, table in TRANSITIONS.items() for phase, event in table]


@pytest.mark.parametrize(("side", "phase", "event"), _MOVES)
def test_each_transition_moves_the_record_and_says_what_to_do(
    side: Side, phase: Phase, event: Event
) -> None:
    record = DealRecord("k", side, phase, T0, T0 - 7, T0 + 1, DEADLINE)
    moved, actions = advance(record, event, T0 + 5)
    target = TRANSITIONS[side][(phase, event)]
    assert moved == DealRecord("k", side, target, T0 + 5, T0 - 7, T0 + 1, DEADLINE)
    rule = timeout_rule(side, target)
    if target in FINAL_PHASES:
        assert actions == (Finish(),)
    elif rule is not None:
        assert actions == (ArmTimeout(rule),)
        assert (rule.side, rule.phase) == (side, target)
    else:
        assert actions == ()


def test_agreement_needs_a_deadline() -> None:
    record, _ = advance(
        new_client_deal("j", now_ms=T0, expires_ms=T0 + 1), Event.MATCH_FOUND, T0
    )
    with pytest.raises(IllegalTransition):
        advance(record, Event.COUNTERSIGNED, T0 + 9)


def test_agreement_learns_the_deadline_and_follows_the_deal_until_it() -> None:
    # The provider holds both signatures and may open the deal until its deadline: the client
    # gives it up only then.
    record = _walk(new_client_deal("j", now_ms=T0, expires_ms=T0 + 1), Event.MATCH_FOUND)
    agreed, actions = advance(record, Event.COUNTERSIGNED, T0 + 9, result_deadline_ms=DEADLINE)
    assert (agreed.phase, agreed.result_deadline_ms) == (Phase.AGREED, DEADLINE)
    (arm,) = actions
    assert isinstance(arm, ArmTimeout) and arm.rule.timeout is Timeout.RESULT_DEADLINE


def test_every_open_phase_has_a_timeout_on_the_side_that_holds_the_money() -> None:
    timeouts = Timeouts(match_ms=10, agreement_ms=20, acceptance_ms=30, settlement_ms=40)
    expected = {
        (Side.CLIENT, Phase.OFFERED): (Timeout.MATCH, T0 + 10),
        (Side.CLIENT, Phase.MATCHED): (Timeout.AGREEMENT, T0 + 20),
        (Side.CLIENT, Phase.AGREED): (Timeout.RESULT_DEADLINE, DEADLINE + 1000),
        (Side.CLIENT, Phase.OPEN): (Timeout.RESULT_DEADLINE, DEADLINE + 1000),
        (Side.CLIENT, Phase.RUNNING): (Timeout.RESULT_DEADLINE, DEADLINE + 1000),
        (Side.CLIENT, Phase.ACCEPTED): (Timeout.SETTLEMENT, T0 + 40),
        (Side.PROVIDER, Phase.AGREED): (Timeout.AGREEMENT, T0 + 20),
        (Side.PROVIDER, Phase.RESULT_READY): (Timeout.ACCEPTANCE, T0 + 30),
        (Side.PROVIDER, Phase.RESULT_SUBMITTED): (Timeout.ACCEPTANCE_WINDOW, T0 + 5000 + 1000),
    }
    for side in Side:
        for phase in Phase:
            if side is Side.PROVIDER and phase in (Phase.OFFERED, Phase.MATCHED):
                continue
            record = DealRecord("k", side, phase, T0, T0, T0 + 10_000, DEADLINE)
            due = due_timeout(record, timeouts, acceptance_window_ms=5000)
            if (side, phase) in expected:
                assert due is not None
                assert (due.timeout, due.at_ms) == expected[(side, phase)]
                assert (phase, due.event) in TRANSITIONS[side]
            else:
                assert due is None, (side, phase)


def test_match_timeout_never_outlives_the_offer() -> None:
    record = new_client_deal("j", now_ms=T0, expires_ms=T0 + 5)
    due = due_timeout(record, Timeouts())
    assert due is not None and due.at_ms == T0 + 5


def test_the_providers_agreement_timeout_never_outlives_the_deadline() -> None:
    record = DealRecord("k", Side.PROVIDER, Phase.AGREED, T0, T0, T0 + 1, T0 + 7)
    due = due_timeout(record, Timeouts())
    assert due is not None and (due.timeout, due.at_ms) == (Timeout.AGREEMENT, T0 + 7)


def test_a_deadline_timeout_without_a_deadline_is_a_deal_error() -> None:
    record = DealRecord("k", Side.CLIENT, Phase.OPEN, T0, T0, T0 + 1)
    with pytest.raises(DealError, match="no result deadline"):
        due_timeout(record, Timeouts())


def test_timeout_table_has_one_rule_per_phase_and_each_fires_a_legal_move() -> None:
    keys = [(rule.side, rule.phase) for rule in TIMEOUT_RULES]
    assert len(keys) == len(set(keys))
    for rule in TIMEOUT_RULES:
        assert rule.phase not in FINAL_PHASES
        assert (rule.phase, rule.event) in TRANSITIONS[rule.side]
        assert timeout_rule(rule.side, rule.phase) is rule


def test_a_rule_naming_an_unknown_length_or_an_illegal_event_cannot_exist() -> None:
    with pytest.raises(ValueError, match="unknown timeout length"):
        TimeoutRule(Side.CLIENT, Phase.OFFERED, Timeout.MATCH, Event.TIMED_OUT, "x",
                    length="match_s")
    with pytest.raises(IllegalTransition):
        TimeoutRule(Side.PROVIDER, Phase.AGREED, Timeout.AGREEMENT, Event.REFUSED, "x")
