"""A job posted by an earlier version, whose job offer committed to no inputs, ends when the
client starts if its deal has not opened: no provider or mediator of this version would run it.
Every other job is left to run."""

import dataclasses

import pytest

from lilypad_p2p.deal_detail import ClientDetail
from lilypad_p2p.market import Phase, Side, new_client_deal, next_phase
from lilypad_p2p.roles._client_submission import unbound_job_ends
from lilypad_p2p.store import StoredDeal


def _job(phase: Phase, nonce: bytes | None) -> StoredDeal[ClientDetail]:
    record = dataclasses.replace(new_client_deal("job", now_ms=0, expires_ms=1), phase=phase)
    return StoredDeal(record, ClientDetail(job_offer=b"", module="hash", submitted_ms=0,
                                           inputs_nonce=nonce))


@pytest.mark.parametrize("phase", [Phase.OFFERED, Phase.MATCHED, Phase.AGREED])
def test_an_unbound_job_not_opened_yet_ends_cancelled(phase):
    ends = unbound_job_ends(_job(phase, None))
    for event in ends:
        phase = next_phase(Side.CLIENT, phase, event)
    assert ends and phase is Phase.CANCELLED


@pytest.mark.parametrize("phase", [Phase.OPEN, Phase.RUNNING, Phase.RESULT_READY, Phase.DISPUTED])
def test_an_unbound_job_whose_deal_opened_goes_on(phase):
    assert unbound_job_ends(_job(phase, None)) == ()


@pytest.mark.parametrize("phase", [Phase.OFFERED, Phase.MATCHED, Phase.AGREED, Phase.OPEN])
def test_a_job_whose_offer_commits_to_its_inputs_goes_on(phase):
    assert unbound_job_ends(_job(phase, b"\1" * 32)) == ()
