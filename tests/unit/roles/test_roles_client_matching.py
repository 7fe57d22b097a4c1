"""What a client keeps of the solvers' proposals it hears: each job's candidates once, and the
IDs of recent matchings only (every solver's proposals for every market reach every client)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import cast

import pytest

from lilypad_p2p import wire
from lilypad_p2p.deal_detail import ClientDetail
from lilypad_p2p.identity import Identity
from lilypad_p2p.market import EPOCH_MS, PROPOSAL_LIFETIME_MS, OfferBook, Phase, new_client_deal
from lilypad_p2p.roles import DealChains, _client_matching
from lilypad_p2p.roles._client_matching import SEEN_MATCHING_MAX_MS, JobMatcher
from lilypad_p2p.store import DealStore

T0 = 1_800_000_000_000
SOLVERS = (Identity.generate(), Identity.generate())
RESOURCE = wire.content_id(b"resource offer")


class Matcher:
    """A `JobMatcher` on a store of our jobs, with a clock the test moves."""

    def __init__(self, tmp_path: Path) -> None:
        self.now = T0
        self.store = DealStore.open(tmp_path / "db")
        self.woken: list[str] = []
        self.matcher = JobMatcher(
            OfferBook(), identity=Identity.generate(), store=self.store,
            chains=cast(DealChains, None),  # hearing proposals touches no chain
            mediators=(), records=None, disputes=None, acceptance_window_s=60,
            clock_ms=lambda: self.now, wake=self.woken.append)

    def add_job(self, name: str, phase: Phase = Phase.OFFERED) -> str:
        key = wire.content_id(name.encode())
        record = new_client_deal(key, now_ms=T0, expires_ms=T0 + 3_600_000)
        self.store.insert(dataclasses.replace(record, phase=phase),
                          ClientDetail(job_offer=b"offer", module="hash", submitted_ms=T0))
        return key

    def hear(self, job: str, *, epoch: int, solver: Identity = SOLVERS[0],
             lifetime_ms: int = PROPOSAL_LIFETIME_MS) -> None:
        created_at = (epoch + 1) * EPOCH_MS
        proposal = wire.MatchProposal(
            market="cpu", epoch=epoch, solver=solver.address, matches=((job, RESOURCE),),
            created_at=created_at, expires_at=created_at + lifetime_ms, nonce=0)
        self.matcher.observe_proposal(solver.sign_envelope(proposal, self.now))

    def seen(self) -> int:
        return len(self.matcher._seen_matchings)


def ended_epoch(now_ms: int) -> int:
    """The epoch that ended last: its solvers' proposals are out."""
    return now_ms // EPOCH_MS - 1


def other_job(i: int) -> str:
    return wire.content_id(f"someone else's job {i}".encode())


def test_a_matching_heard_from_several_solvers_adds_its_candidate_once(tmp_path: Path) -> None:
    m = Matcher(tmp_path)
    job, epoch = m.add_job("ours"), ended_epoch(T0)
    for solver in SOLVERS:
        m.hear(job, epoch=epoch, solver=solver)
    assert m.matcher._candidates == {job: [RESOURCE]}
    assert m.woken == [job]
    # A later epoch's matching of the same pair: the job is woken, the offer listed once.
    m.now += EPOCH_MS
    m.hear(job, epoch=ended_epoch(m.now))
    assert m.matcher._candidates == {job: [RESOURCE]}
    assert m.woken == [job, job]
    # Long after its ID is forgotten, a copy that lives longer (a solver's choice) is heard.
    m.now += SEEN_MATCHING_MAX_MS
    m.hear(job, epoch=epoch, lifetime_ms=wire.MAX_LIFETIME_MS)
    assert m.matcher._candidates == {job: [RESOURCE]}


def test_matchings_naming_other_jobs_are_forgotten_once_no_copy_can_come(
    tmp_path: Path,
) -> None:
    m = Matcher(tmp_path)
    # One matching an epoch for ten minutes, the first expiring only after a day.
    m.hear(other_job(0), epoch=ended_epoch(T0), lifetime_ms=wire.MAX_LIFETIME_MS)
    for i in range(1, 1_200):
        m.now += EPOCH_MS
        m.hear(other_job(i), epoch=ended_epoch(m.now))
        assert m.seen() <= SEEN_MATCHING_MAX_MS // EPOCH_MS + 1
    assert m.seen() <= PROPOSAL_LIFETIME_MS // EPOCH_MS + 2
    m.now += SEEN_MATCHING_MAX_MS
    m.hear(other_job(0), epoch=ended_epoch(m.now))
    assert m.seen() == 1
    assert m.matcher._candidates == {}


def test_a_flood_of_matchings_is_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_client_matching, "MAX_SEEN_MATCHINGS", 8)
    m = Matcher(tmp_path)
    for i in range(50):  # all heard at once, none expiring soon
        m.hear(other_job(i), epoch=ended_epoch(T0), lifetime_ms=wire.MAX_LIFETIME_MS)
    assert m.seen() == 8


def test_an_ended_job_gets_no_candidates(tmp_path: Path) -> None:
    m = Matcher(tmp_path)
    job = m.add_job("cancelled", Phase.CANCELLED)
    m.hear(job, epoch=ended_epoch(T0))
    assert m.matcher._candidates == {}
    assert m.woken == []
