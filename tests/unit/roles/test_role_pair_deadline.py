"""A provider that agreed but cannot run the job (no Docker) loses its collateral to the job
creator once the result deadline passes: the real client and provider on the in-memory
network, the embedded chain's time following trio's autojumping clock, so the deadline's
minutes pass in no real time and the contract itself checks that they have."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import trio

from lilypad_p2p.exec import ExecError
from lilypad_p2p.roles import JobSubmission
from lilypad_p2p.testing import chain_follows_clock, role_pair

pytestmark = pytest.mark.chain
LIMIT_S = 4 * 3600  # virtual seconds: the job's deadline and the claim, with room to spare
FINAL = {"settled", "rejected", "timed_out", "cancelled", "resolved"}


async def _no_docker():
    raise ExecError("no Docker on this provider")


async def test_no_result_by_the_deadline_pays_the_collateral_to_the_job_creator(
    tmp_path: Path, autojump
) -> None:
    async with role_pair(tmp_path, executor_factory=_no_docker) as pair:
        client_chain = pair.chains[pair.client_id.address]
        provider_chain = pair.chains[pair.provider_id.address]
        before = [await c.client.balance() for c in (client_chain, provider_chain)]
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(chain_follows_clock, client_chain.sync.chain, pair.clock))
            with trio.fail_after(LIMIT_S):
                key = await pair.client.submit(JobSubmission(
                    module="hash", params={"text": "x"}, target=pair.provider_id.address))
                await pair.client_store.until(lambda: pair.client_store.phase(key) in FINAL)
                await pair.provider_store.until(lambda: all(
                    d.record.phase.value in FINAL for d in pair.provider_store.deals()))
            nursery.cancel_scope.cancel()
        after = [await c.client.balance() for c in (client_chain, provider_chain)]
        deal = pair.client_store.get(key).detail.deal
        assert pair.client_store.phase(key) == "timed_out"
        assert [d.record.phase.value for d in pair.provider_store.deals()] == ["timed_out"]
        assert pair.clock() >= deal.result_deadline * 1000  # not a moment early
    total = [b.free + b.locked + b.withdraw_requested for b in (*before, *after)]
    assert total[2] - total[0] == deal.collateral
    assert total[1] - total[3] == deal.collateral
    assert after[0].locked == after[1].locked == 0
    assert pair.network.reports == []
