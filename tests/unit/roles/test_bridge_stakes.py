"""How much of a bridge's free deposit a request's job may count on: the max prices of the
other requests it claimed whose deals have not locked their payment yet are held back."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lilypad_p2p.deal_detail import ClientDetail
from lilypad_p2p.market import Phase, new_client_deal
from lilypad_p2p.roles._bridge_stakes import UNFUNDED_PHASES, ClaimedRequests
from lilypad_p2p.store import ClientDeal, StoredDeal

A, B, C = (bytes([n]) * 32 for n in (1, 2, 3))


def _deal(phase: Phase) -> ClientDeal:
    record = replace(new_client_deal("k", now_ms=0, expires_ms=1), phase=phase)
    return StoredDeal(record, ClientDetail(job_offer=b"", module="m", submitted_ms=0))


def test_a_request_counts_on_what_the_others_claimed_have_not_locked() -> None:
    claims = ClaimedRequests()
    claims.claimed(A, 100)
    claims.claimed(B, 30)
    assert claims.available_wei(150, {}, C) == 20  # neither has a deal yet
    assert claims.available_wei(150, {}, A) == 120  # its own max price is not held back
    claims.forget(B)
    assert claims.available_wei(150, {}, C) == 50


@pytest.mark.parametrize("phase", list(Phase), ids=str)
def test_a_deal_that_locked_its_payment_releases_its_request(phase: Phase) -> None:
    claims = ClaimedRequests()
    claims.claimed(A, 100)
    held = claims.available_wei(150, {A: [_deal(Phase.CANCELLED), _deal(phase)]}, C) == 50
    assert held == (phase in UNFUNDED_PHASES)
