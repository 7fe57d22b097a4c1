"""Two real solver nodes (in-process `Node`s on loopback gossip) given the same offers compute
the same matching: one publishes it and the other, hearing it before its own publication is
due, skips its copy (both publish if the copy is late; then the matching IDs are equal). Both
hold the matched offers out of later epochs."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio

from lilypad_p2p.config import NodeConfig
from lilypad_p2p.identity import Identity
from lilypad_p2p.market import EPOCH_MS, mismatch
from lilypad_p2p.net import GossipNet, MarketTopic, ProposalReceived, wall_clock_ms
from lilypad_p2p.node import Node
from lilypad_p2p.testing.offers import make_job_offer, make_resource_offer
from lilypad_p2p.wire import JobOffer, MatchProposal, ResourceOffer, ResourceSpec

pytestmark = pytest.mark.net

LOOPBACK = "/ip4/127.0.0.1/tcp/0"
MEDIATOR = Identity.generate().address
MESH_TIMEOUT_S = 30.0
PROPOSALS_TIMEOUT_S = 20.0
POLL_S = 0.02
LATER_EPOCHS = 4
OFFER_LIFETIME_MS = 600_000
# Publish this long after an epoch starts, so gossip has the rest of it (and the solvers'
# grace) to reach both solvers before either closes the epoch.
PUBLISH_AFTER_EPOCH_START_MS = 20


async def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    with trio.move_on_after(timeout_s) as scope:
        while not condition():
            await trio.sleep(POLL_S)
    if scope.cancelled_caught:
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


async def start_solver(nursery: trio.Nursery, home, bootstrap: tuple[str, ...]) -> Node:
    config = NodeConfig(
        home=home, roles=frozenset({"solver"}), listen=(LOOPBACK,), bootstrap=bootstrap
    )
    home.mkdir()
    node = Node(config, Identity.generate())
    await nursery.start(node.run)
    return node


def offers(provider: str, creator: str, now_ms: int):
    def resource(milli_cpu: int, price: int) -> ResourceOffer:
        return make_resource_offer(
            provider=provider, spec=ResourceSpec(milli_cpu=milli_cpu, ram_mb=4096, disk_mb=10_000),
            price_per_job_wei=price, trusted_mediators=(MEDIATOR,), created_at=now_ms,
            expires_at=now_ms + OFFER_LIFETIME_MS, nonce=price)

    def job(nonce: int, milli_cpu: int) -> JobOffer:
        return make_job_offer(
            job_creator=creator, spec=ResourceSpec(milli_cpu=milli_cpu, ram_mb=512, disk_mb=100),
            max_price_wei=100, trusted_mediators=(MEDIATOR,), deadline=now_ms + OFFER_LIFETIME_MS,
            created_at=now_ms - nonce,  # distinct ages, so "oldest first" is meaningful
            expires_at=now_ms + OFFER_LIFETIME_MS, nonce=nonce)

    # First-fit would put the old small job on the cheap offer and strand the big one.
    resources = [resource(2000, 1), resource(1000, 5)]
    jobs = [job(2, 1000), job(1, 2000)]
    return jobs, resources


async def test_two_solver_nodes_publish_the_same_matching(tmp_path):
    heard: list[MatchProposal] = []
    async with trio.open_nursery() as nursery:
        first = await start_solver(nursery, tmp_path / "s1", ())
        boot = tuple(first.net.listen_addrs()[:1])
        second = await start_solver(nursery, tmp_path / "s2", boot)
        # The gossip signer of an offer must be its owner: one network per participant.
        client, provider = Identity.generate(), Identity.generate()
        market = GossipNet(client, listen_addrs=[LOOPBACK], bootstrap=boot, markets=["cpu"])
        provider_net = GossipNet(provider, listen_addrs=[LOOPBACK], bootstrap=boot, markets=["cpu"])
        await nursery.start(market.run)
        await nursery.start(provider_net.run)

        async def listen() -> None:
            async for event in market.events:
                if isinstance(event, ProposalReceived):
                    assert isinstance(event.envelope.body, MatchProposal)
                    heard.append(event.envelope.body)

        nursery.start_soon(listen)
        topic = str(MarketTopic("cpu"))
        await wait_until(
            # Both solvers in the client's mesh (it may also graft the provider once peer
            # exchange introduces them), and the provider meshed with someone.
            lambda: (
                {first.net.peer_id, second.net.peer_id} <= market.mesh_peers(topic)
                and second.net.peer_id in first.net.mesh_peers(topic)
                and bool(provider_net.mesh_peers(topic))
            ),
            MESH_TIMEOUT_S,
            "a full mesh on the market topic",
        )

        while wall_clock_ms() % EPOCH_MS > PUBLISH_AFTER_EPOCH_START_MS:
            await trio.sleep(POLL_S / 4)
        now_ms = wall_clock_ms()
        jobs, resources = offers(provider.address, client.address, now_ms)
        for body in resources:
            await provider_net.publish(provider.sign_envelope(body, now_ms))
        for body in jobs:
            await market.publish(client.sign_envelope(body, now_ms))

        def settled_epoch(node: Node) -> bool:
            assert node.solver is not None
            statistics = node.solver.statistics()
            return statistics.proposals_published + statistics.proposals_already_heard == 1

        await wait_until(
            lambda: heard and all(settled_epoch(node) for node in (first, second)),
            PROPOSALS_TIMEOUT_S,
            "each solver to publish its matching or skip it as already heard",
        )
        one = heard[0]
        assert all((p.epoch, p.matching_id, p.matches) == (one.epoch, one.matching_id,
                                                          one.matches) for p in heard)
        assert len({p.solver for p in heard}) == len(heard)  # one copy per solver at most

        # Both jobs placed (first-fit would place one), every pair valid.
        assert len(one.matches) == 2
        by_id = {o.cid: o for o in [*jobs, *resources]}
        for job_id, resource_id in one.matches:
            assert mismatch(by_id[job_id], by_id[resource_id], now_ms) is None

        # Later epochs propose nothing more: each solver holds the offers its own and the
        # other's proposal matched.
        epochs_then = [node.solver.statistics().epochs for node in (first, second)]
        await wait_until(
            lambda: all(
                node.solver.statistics().epochs >= seen + LATER_EPOCHS
                for node, seen in zip((first, second), epochs_then, strict=True)
            ),
            PROPOSALS_TIMEOUT_S,
            f"{LATER_EPOCHS} more epochs",
        )
        published = sum(node.solver.statistics().proposals_published for node in (first, second))
        assert len(heard) == published, [(p.solver, p.epoch) for p in heard]
        assert 1 <= published <= 2
        nursery.cancel_scope.cancel()
