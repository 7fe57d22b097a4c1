"""How much of a bridge's free deposit a request's job may count on: what the client role has
not promised to jobs not opened yet, less the max prices and fees of the other requests it
claimed that are still to be submitted."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lilypad_p2p.deal_detail import ClientDetail
from lilypad_p2p.market import Phase, new_client_deal
from lilypad_p2p.roles._bridge_stakes import RESUBMITTED_PHASES, ClaimedRequests
from lilypad_p2p.roles._client_submission import UNOPENED_PHASES
from lilypad_p2p.store import ClientDeal, StoredDeal

A, B, C = (bytes([n]) * 32 for n in (1, 2, 3))
FEE = 5


def _deal(phase: Phase) -> ClientDeal:
    record = replace(new_client_deal("k", now_ms=0, expires_ms=1), phase=phase)
    return StoredDeal(record, ClientDetail(job_offer=b"", module="m", submitted_ms=0))


def test_a_request_counts_on_what_the_others_claimed_will_lock_once_submitted() -> None:
    claims = ClaimedRequests()
    claims.claimed(A, 100)
    claims.claimed(B, 30)
    assert claims.available_wei(150, {}, C, FEE) == 10  # neither has a deal yet
    assert claims.available_wei(150, {}, A, FEE) == 115  # its own is not held back
    claims.forget(B)
    assert claims.available_wei(150, {}, C, FEE) == 45


@pytest.mark.parametrize("phase", list(Phase), ids=str)
def test_a_request_with_a_live_deal_is_the_client_roles_or_the_chains_to_count(
    phase: Phase
) -> None:
    # Not opened yet: the client role's promise; open or later: locked on chain. Ended
    # unopened: submitted again, so held here.
    claims = ClaimedRequests()
    claims.claimed(A, 100)
    held = claims.available_wei(150, {A: [_deal(Phase.CANCELLED), _deal(phase)]}, C, FEE) == 45
    assert held == (phase in RESUBMITTED_PHASES)
    assert not RESUBMITTED_PHASES & UNOPENED_PHASES
