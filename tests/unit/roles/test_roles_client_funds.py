"""A client submits no more jobs than its free deposit can open together: the jobs whose deals
are not open yet hold back what they will lock (a deal locks its payment and fee only when the
provider opens it), so a job beyond the deposit is refused at once with what to do (deposit),
rather than agreed with a provider that could not open it. Against a scripted provider on the
embedded chain."""

from __future__ import annotations

import pytest
import trio
from scripted_provider import FEE_WEI, ScriptedProvider, client_market

from lilypad_p2p.chain import Outcome
from lilypad_p2p.roles import JobSubmission
from lilypad_p2p.roles._client_submission import SubmissionDeferred
from lilypad_p2p.testing import WatchedStore
from lilypad_p2p.testing._role_pair import DEPOSIT_WEI

pytestmark = pytest.mark.chain
LIMIT_S = 600  # virtual seconds


class HeldProvider(ScriptedProvider):
    """Takes the inputs and opens the deal only once `go` is set."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.go = trio.Event()

    async def on_job(self, peer_id, request, gate):
        await self.go.wait()
        return await super().on_job(peer_id, request, gate)


async def test_a_job_beyond_what_the_unopened_jobs_leave_waits_for_a_deposit(
    tmp_path, autojump
) -> None:
    market = await client_market(tmp_path, Outcome.PROVIDER_CORRECT,
                                 lambda identity, chain: HeldProvider(identity, chain, lie=False))
    client, store, chain = market.client, market.client._store, market.chain
    assert isinstance(store, WatchedStore)
    with trio.fail_after(LIMIT_S):
        async with trio.open_nursery() as nursery:
            await nursery.start(client.run)
            first = await client.submit(JobSubmission(
                module="hash", params={"text": "a"}, target=market.provider_id.address))
            await store.until(lambda: store.phase(first) == "agreed")  # not opened yet
            deal = store.get(first).detail.deal
            assert client.promised_wei(chain.chain_id) == deal.payment + FEE_WEI
            # The free balance still shows the first job's payment and fee.
            left = DEPOSIT_WEI - client.promised_wei(chain.chain_id)
            beyond = JobSubmission(module="hash", params={"text": "b"},
                                   max_price_wei=left - FEE_WEI + 1,
                                   target=market.provider_id.address)
            with pytest.raises(SubmissionDeferred, match="jobs not opened yet will lock"):
                await client.submit(beyond)
            assert [d.record.key for d in store.client_deals()] == [first]
            await chain.client.deposit(1)
            second = await client.submit(beyond)
            market.provider.go.set()
            await store.until(lambda: {store.phase(first), store.phase(second)} == {"settled"})
            nursery.cancel_scope.cancel()
    assert (await chain.client.balance()).locked == 0
