"""A real client and a real provider meet on the in-memory network: a job runs in Docker, its
result is checked and the deal settles on the embedded chain, with the deposits conserved and
no peer reported."""

from __future__ import annotations

from functools import partial

import pytest
import trio

from lilypad_p2p.exec import Executor, ModuleCatalog
from lilypad_p2p.roles import JobSubmission
from lilypad_p2p.testing import require_docker, role_pair

pytestmark = [pytest.mark.docker, pytest.mark.chain]
LIMIT_S = 120


async def test_a_job_runs_checks_and_settles_between_the_pair(tmp_path):
    require_docker("the provider runs the job in Docker")
    catalog = ModuleCatalog(tmp_path / "modules")
    connect = partial(Executor.connect, modules=catalog, owner="role-pair/provider",
                      workdir_root=tmp_path / "jobs")
    async with role_pair(tmp_path, executor_factory=connect, modules=catalog) as pair:
        client_chain = pair.chains[pair.client_id.address]
        provider_chain = pair.chains[pair.provider_id.address]
        before = [await c.client.balance() for c in (client_chain, provider_chain)]
        with trio.fail_after(LIMIT_S):
            key = await pair.client.submit(JobSubmission(
                module="hash", params={"text": "pair"}, target=pair.provider_id.address))
            await pair.client_store.until(
                lambda: pair.client_store.phase(key) in {"settled", "rejected", "timed_out",
                                                         "cancelled"})
        after = [await c.client.balance() for c in (client_chain, provider_chain)]
        assert pair.client_store.phase(key) == "settled"
        deal = pair.client_store.get(key).detail.deal
    total = [b.free + b.locked + b.withdraw_requested for b in (*before, *after)]
    assert total[2] == total[0] - deal.payment and total[3] == total[1] + deal.payment
    assert after[0].locked == after[1].locked == 0  # nothing left at stake
    assert pair.network.reports == []
