"""Mediator verdicts and the k-of-n tally (market/_verdicts.py)."""

from __future__ import annotations

import pytest

from lilypad_p2p.chain import Outcome
from lilypad_p2p.market import (
    EquivocationWatch,
    SignedVerdict,
    TallyRejected,
    VerdictOutcome,
    VerdictTally,
    judge_runs,
)

GOOD = b"\x01" * 32
BAD = b"\x02" * 32
OTHER = b"\x03" * 32
MEMBERS = tuple(f"0x{i:040x}" for i in range(1, 6))


def verdict(index: int, outcome: VerdictOutcome, digest: bytes) -> SignedVerdict:
    return SignedVerdict(MEMBERS[index], outcome, digest, bytes([index]) * 65)


def test_outcomes_are_numbered_as_the_contract() -> None:
    assert {o.name: int(o) for o in VerdictOutcome} == {o.name: int(o) for o in Outcome}


def test_judge_runs() -> None:
    assert judge_runs(GOOD, [GOOD, GOOD]) == (VerdictOutcome.PROVIDER_CORRECT, GOOD)
    assert judge_runs(BAD, [GOOD, GOOD]) == (VerdictOutcome.PROVIDER_WRONG, GOOD)
    # Non-deterministic verdicts are signed over the provider's hash so that they agree.
    assert judge_runs(BAD, [GOOD, OTHER]) == (VerdictOutcome.NON_DETERMINISTIC, BAD)
    with pytest.raises(ValueError):
        judge_runs(GOOD, [GOOD])


def test_three_of_five_with_one_silent_and_one_liar() -> None:
    tally = VerdictTally(MEMBERS, 3)
    assert tally.add(verdict(4, VerdictOutcome.PROVIDER_CORRECT, BAD)) is None  # the liar
    assert tally.add(verdict(2, VerdictOutcome.PROVIDER_WRONG, GOOD)) is None
    assert tally.add(verdict(0, VerdictOutcome.PROVIDER_WRONG, GOOD)) is None
    quorum = tally.add(verdict(3, VerdictOutcome.PROVIDER_WRONG, GOOD))
    assert quorum is not None
    assert quorum.outcome is VerdictOutcome.PROVIDER_WRONG and quorum.result_hash == GOOD
    assert quorum.signers == (MEMBERS[0], MEMBERS[2], MEMBERS[3])  # ascending: contract order
    assert quorum.signatures == tuple(bytes([i]) * 65 for i in (0, 2, 3))
    assert [v.mediator for v in tally.dissent()] == [MEMBERS[4]]
    assert tally.missing() == (MEMBERS[1],)


def test_no_quorum_when_votes_split() -> None:
    tally = VerdictTally(MEMBERS, 3)
    tally.add(verdict(0, VerdictOutcome.PROVIDER_WRONG, GOOD))
    tally.add(verdict(1, VerdictOutcome.PROVIDER_WRONG, OTHER))  # same outcome, other hash
    tally.add(verdict(2, VerdictOutcome.NON_DETERMINISTIC, BAD))
    assert tally.quorum() is None
    assert len(tally.dissent()) == 3


def test_non_members_and_repeats_do_not_count() -> None:
    tally = VerdictTally(MEMBERS[:3], 2)
    outsider = SignedVerdict(MEMBERS[4], VerdictOutcome.PROVIDER_WRONG, GOOD, b"\x09" * 65)
    with pytest.raises(TallyRejected):
        tally.add(outsider)
    tally.add(verdict(0, VerdictOutcome.PROVIDER_WRONG, GOOD))
    with pytest.raises(TallyRejected):
        tally.add(verdict(0, VerdictOutcome.PROVIDER_WRONG, GOOD))
    assert tally.quorum() is None


def test_equivocation_is_listed() -> None:
    tally = VerdictTally(MEMBERS, 3)
    tally.add(verdict(0, VerdictOutcome.PROVIDER_WRONG, GOOD))
    tally.add(verdict(0, VerdictOutcome.PROVIDER_CORRECT, BAD))
    assert tally.equivocators() == (MEMBERS[0],)


def test_tally_shape_is_checked() -> None:
    with pytest.raises(ValueError):
        VerdictTally(MEMBERS, 6)
    with pytest.raises(ValueError):
        VerdictTally((MEMBERS[0], MEMBERS[0]), 1)


def test_equivocation_watch_proves_a_second_different_verdict_once() -> None:
    watch = EquivocationWatch(capacity=2)
    deal, other_deal = b"\xd1" * 32, b"\xd2" * 32
    yes = verdict(0, VerdictOutcome.PROVIDER_CORRECT, GOOD)
    no = verdict(0, VerdictOutcome.PROVIDER_WRONG, BAD)
    assert watch.observe(deal, yes) is None
    assert watch.observe(deal, yes) is None  # the same verdict again is no offence
    assert watch.observe(other_deal, no) is None  # another deal: its own first verdict
    assert watch.observe(deal, no) == (yes, no)
    assert watch.observe(deal, verdict(0, VerdictOutcome.NON_DETERMINISTIC, GOOD)) is None
    # bounded: a third (deal, mediator) entry forgets the oldest
    assert watch.observe(deal, verdict(1, VerdictOutcome.PROVIDER_CORRECT, GOOD)) is None
    assert watch.observe(deal, verdict(2, VerdictOutcome.PROVIDER_CORRECT, GOOD)) is None
    with pytest.raises(ValueError):
        watch.observe(b"short", yes)
