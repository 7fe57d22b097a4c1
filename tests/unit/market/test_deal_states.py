"""The deal state machine: table, illegal moves, timeouts per phase, generated diagram."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lilypad_p2p.market import (
    FINAL_PHASES,
    TRANSITIONS,
    DealRecord,
    Event,
    IllegalTransition,
    Phase,
    Side,
    Timeout,
    Timeouts,
    advance,
    due_timeout,
    new_client_deal,
    new_provider_deal,
    state_diagram,
)

T0 = 1_700_000_000_000
DEADLINE = T0 + 120_000


def _walk(record: DealRecord, *events: Event) -> DealRecord:
    for i, event in enumerate(events):
        record = advance(record, event, T0 + i + 1, result_deadline_ms=DEADLINE)
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
        assert advance(record, event, T0 + 5).phase is TRANSITIONS[side][(phase, event)]
    else:
        with pytest.raises(IllegalTransition):
            advance(record, event, T0 + 5)


def test_agreement_needs_a_deadline() -> None:
    record = advance(new_client_deal("j", now_ms=T0, expires_ms=T0 + 1), Event.MATCH_FOUND, T0)
    with pytest.raises(IllegalTransition):
        advance(record, Event.COUNTERSIGNED, T0 + 9)


def test_every_open_phase_has_a_timeout_on_the_side_that_holds_the_money() -> None:
    timeouts = Timeouts(match_ms=10, agreement_ms=20, acceptance_ms=30, settlement_ms=40)
    expected = {
        (Side.CLIENT, Phase.OFFERED): (Timeout.MATCH, T0 + 10),
        (Side.CLIENT, Phase.MATCHED): (Timeout.AGREEMENT, T0 + 20),
        (Side.CLIENT, Phase.AGREED): (Timeout.AGREEMENT, T0 + 20),
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


def test_diagram_names_every_transition() -> None:
    text = state_diagram()
    for table in TRANSITIONS.values():
        for (phase, event), target in table.items():
            assert f"{phase} --> {target}: {event}" in text


def test_committed_diagram_is_up_to_date() -> None:
    from pathlib import Path

    committed = Path(__file__).resolve().parents[3] / "docs" / "deal-states.md"
    assert committed.read_text() == state_diagram()
