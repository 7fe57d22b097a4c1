"""Job offers reach the solvers, not the other clients: a client publishes its job offers and
their cancellations to the job followers it is connected to, and hears the market's resource
offers (and matches) on the market topic; offer sync gives it no job offers either."""

import pytest
import trio
from net_testbed import MESH_TIMEOUT_S, market_topic, signed_offer, start_net, wait_until

from lilypad_p2p.net import CancelReceived, JobsTopic, wall_clock_ms
from lilypad_p2p.testing.offers import make_job_offer
from lilypad_p2p.wire import Cancel, JobOffer

pytestmark = pytest.mark.net


async def test_job_offers_reach_solvers_and_no_other_client():
    async with trio.open_nursery() as nursery:
        now_ms = wall_clock_ms()
        job = make_job_offer(created_at=now_ms)  # signed below by its creator, the first client
        held: list[bytes] = []
        served_with_jobs: list[bool] = []

        def solver_snapshot(markets, with_jobs):
            served_with_jobs.append(with_jobs)
            return [data for data in held if with_jobs or b"job_offer" not in data]

        solver = await start_net(nursery, job_markets=("cpu",), offer_snapshot=solver_snapshot)
        clients = [await start_net(nursery, bootstrap=[solver.addr]) for _ in range(2)]
        jobs = str(JobsTopic("cpu"))
        await wait_until(
            lambda: all(solver.net.peer_id in c.net.topic_peers(jobs)
                        and c.net.mesh_peers(market_topic()) for c in clients),
            MESH_TIMEOUT_S)
        creator, other = clients
        job = make_job_offer(job_creator=creator.identity.address, created_at=now_ms)
        job_envelope = creator.identity.sign_envelope(job, now_ms)
        await creator.net.publish(job_envelope)
        await solver.inbox.wait_for({job_envelope.envelope_id})

        # A resource offer published after it reaches the other client; the job offer never.
        resource = signed_offer(solver.identity, wall_clock_ms())
        await solver.net.publish(resource)
        await other.inbox.wait_for({resource.envelope_id})
        cancel = creator.identity.sign_envelope(
            Cancel(market="cpu", offer_cid=job.cid, owner=creator.identity.address,
                   created_at=wall_clock_ms(), nonce=1), wall_clock_ms())
        await creator.net.publish(cancel, cancels_job_offer=True)
        await solver.inbox.wait_until(
            lambda: any(isinstance(e, CancelReceived) for e in solver.inbox.others),
            MESH_TIMEOUT_S)
        late = signed_offer(creator.identity, wall_clock_ms(), nonce=2)
        await creator.net.publish(late)
        await other.inbox.wait_for({late.envelope_id})
        assert not any(isinstance(e.body, JobOffer) for e in other.inbox.offers)
        assert not any(isinstance(e, CancelReceived) for e in other.inbox.others)

        # Offer sync: the solver holds the job offer; a client that asks gets the rest (the
        # resource offer again: these clients name nothing they hold).
        held[:] = [job_envelope.encode(), resource.encode()]
        served_with_jobs.clear()
        assert await other.net._pull_offers(solver.net.peer_id) == 1
        assert served_with_jobs == [False]
        assert not any(isinstance(e.body, JobOffer) for e in other.inbox.offers)
        for client in clients:
            assert client.net.statistics().dropped == {}
        nursery.cancel_scope.cancel()
