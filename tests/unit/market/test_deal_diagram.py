"""docs/deal-states.md is what the generator writes, and says what the tables say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lilypad_p2p.market import TIMEOUT_RULES, TRANSITIONS, Side, next_phase, state_diagram
from lilypad_p2p.market._deal_diagram import UNTIMED, fires_at, untimed_phases

ROOT = Path(__file__).resolve().parents[3]


def test_committed_diagram_is_what_the_generator_writes() -> None:
    generated = subprocess.run(
        [sys.executable, "-m", "lilypad_p2p.market.deal_states"],
        check=True, capture_output=True, text=True,
    )
    assert "RuntimeWarning" not in generated.stderr  # runpy: the module was imported twice
    assert generated.stdout == state_diagram()
    committed = (ROOT / "docs" / "deal-states.md").read_text()
    assert committed == state_diagram(), (
        "docs/deal-states.md is stale: run "
        "`python -m lilypad_p2p.market.deal_states > docs/deal-states.md`"
    )


def test_diagram_names_every_transition() -> None:
    text = state_diagram()
    for table in TRANSITIONS.values():
        for (phase, event), target in table.items():
            assert f"{phase} --> {target}: {event}" in text


def test_timeout_table_has_a_row_per_rule_ending_where_the_machine_goes() -> None:
    text = state_diagram()
    for rule in TIMEOUT_RULES:
        target = next_phase(rule.side, rule.phase, rule.event)
        row = (f"| {rule.side} | {rule.phase} | {rule.timeout} | {fires_at(rule)} "
               f"| {rule.event} | {target} | {rule.then} |")
        assert row in text


def test_matched_agreement_timeout_goes_back_to_offered() -> None:
    assert ("| client | matched | agreement | phase start + `agreement_timeout_s` "
            "| refused | offered |") in state_diagram()


@pytest.mark.parametrize("side", list(Side))
def test_every_untimed_open_phase_says_what_ends_it(side: Side) -> None:
    phases = untimed_phases(side)
    assert {key for key in UNTIMED if key[0] is side} == {(side, phase) for phase in phases}
