"""The invariants over a synthetic run (no anvil, no node): what they accept as shown."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from simnet import load_scenario
from simnet._invariants import invariants, non_deterministic_check
from simnet._measure import ChainFigures
from simnet._plan import plan_nodes
from simnet._report import NetworkFigures

SCENARIOS = Path(__file__).parents[3] / "simnet" / "scenarios"


def _random_deal(key: str, **ruled: str) -> dict:
    return {"key": key, "module": "random", "phase": "settled", "payment_wei": 0,
            "provider": None, "outcome": None, "check_outcome": None, **ruled}


def _checks(tmp_path: Path, deals: list[dict]) -> dict[str, tuple[bool, str]]:
    scenario = load_scenario(SCENARIOS / "nondeterministic.toml")
    plans = plan_nodes(scenario)
    run = SimpleNamespace(
        scenario=scenario, plans=plans, world=SimpleNamespace(base_dir=tmp_path),
        client_deals={d["key"]: d for d in deals},
        submitted=[("client-1", d["key"]) for d in deals], module_ids={})
    money = {p.name: 10**18 for p in plans}
    checks = invariants(run, money, money, ChainFigures(5, 5, {}, {}), {}, {}, NetworkFigures())
    return {c.name: (c.ok, c.detail) for c in checks}


def test_random_jobs_nobody_judged_do_not_pass_as_non_deterministic(tmp_path):
    # The report of a run that never looked at check_outcome: every random job "None".
    unjudged = [_random_deal("a"), _random_deal("b")]
    ok, detail = _checks(tmp_path, unjudged)["non_deterministic_jobs_not_slashed"]
    assert not ok and "not judged: 2 of 2" in detail


def test_random_jobs_ruled_non_deterministic_off_or_on_chain_pass(tmp_path):
    ruled = [_random_deal("a", check_outcome="NON_DETERMINISTIC"),
             _random_deal("b", outcome="NON_DETERMINISTIC", phase="resolved")]
    ok, detail = _checks(tmp_path, ruled)["non_deterministic_jobs_not_slashed"]
    assert ok, detail
    assert "{'NON_DETERMINISTIC': 2}" in detail


@pytest.mark.parametrize(("deals", "rate", "ok"), [
    ([], 1.0, False),  # no random job at all
    ([_random_deal("a", check_outcome="PROVIDER_CORRECT")], 1.0, False),
    ([_random_deal("a", check_outcome="NON_DETERMINISTIC"), _random_deal("b")], 1.0, False),
    ([_random_deal("a", check_outcome="NON_DETERMINISTIC"), _random_deal("b")], 0.5, True),
    ([_random_deal("a"), _random_deal("b")], 0.5, False),
])
def test_the_non_deterministic_check_wants_real_rulings(deals, rate, ok):
    assert non_deterministic_check(deals, rate)[0] is ok
