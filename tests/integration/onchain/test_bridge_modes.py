"""Both trust modes end to end with real nodes (Docker provider, solver, --chain-bridge, three
mediator nodes re-running requests as the requester's consortium, k = 2) on anvil.

Honest provider: the example contract gets the correct answer in attested mode (two of its
mediators voted the bridge's hash) and in optimistic mode (unchallenged through its window).
Cheating provider: its wrong output, posted by the bridge, is overturned in both modes and never
reaches the callback; in optimistic mode a mediator node challenged it and is paid bond + half
the bridge's bond, and in attested mode the requester gets the bridge's bond."""

from __future__ import annotations

import hashlib

import pytest
from bridge_world import (
    BOND_WEI,
    ESCROW_WEI,
    ask,
    attested_policy,
    await_status,
    deploy_requests_world,
    optimistic_policy,
    posted_deal_id,
    require_parts,
)

from lilypad_p2p.chain import RequestStatus, SettlementClient
from lilypad_p2p.localnet import market_world, node_identity, prepare_trusting_home

pytestmark = [pytest.mark.net, pytest.mark.chain, pytest.mark.docker, pytest.mark.slow]

MEDIATORS = 3
THRESHOLD = 2


def _start(world, name, roles, requests_address, trusted, boot, config_lines=""):
    prepare_trusting_home(world, name, trusted, config_lines=config_lines)
    with (world.base_dir / name / "config.toml").open("a") as config:
        config.write(f'requests = "{requests_address}"\n')
    node = world.cluster.start_node(name, roles=roles, bootstrap=boot)
    node.wait_ready()
    world.nodes[name] = node
    return node


@pytest.mark.parametrize("honest", [True, False], ids=["honest", "cheating-provider"])
def test_requests_in_both_modes_with_real_nodes(tmp_path, honest):
    require_parts()
    with market_world(tmp_path) as world:
        names = [f"mediator-{i}" for i in range(MEDIATORS)]
        consortium = sorted((node_identity(world, n).address for n in names),
                            key=lambda a: int(a, 16))
        # The bridge claims only where it trusts k of the request's mediators (they rule on
        # its result and its bond); its deals keep the market's mediator.
        prepare_trusting_home(world, "bridge", [world.mediator, *consortium],
                              config_lines="bridge_confirmations = 0\n")
        chain, example, requests = deploy_requests_world(world, tmp_path / "bridge")
        provider = _start(world, "provider", ["provider"], requests.address, [world.mediator],
                          [], "" if honest else "cheat_wrong_output = true")
        boot = [provider.dial_addr]
        world.start("solver", roles=["solver"], bootstrap=boot)
        mediators = [_start(world, n, ["mediator"], requests.address, [world.mediator], boot)
                     for n in names]
        bridge = world.cluster.start_node("bridge", roles=["chain-bridge"], bootstrap=boot)
        bridge.wait_ready()
        world.nodes["bridge"] = bridge
        world.wait_until_known(bridge, [provider])

        attested = ask(example, chain, requests, "hash", {"text": "attested"},
                       attested_policy(consortium, THRESHOLD))
        optimistic = ask(example, chain, requests, "hash", {"text": "optimistic"},
                         optimistic_policy(consortium, THRESHOLD))
        bridge_address = bridge.status["address"]

        if honest:
            for requested, text in ((attested, b"attested"), (optimistic, b"optimistic")):
                assert await_status(requests, requested.request_id, bridge) is \
                    RequestStatus.DELIVERED
                answer = example.read("answers", requested.request_id)
                assert answer.strip() == hashlib.sha256(text).hexdigest()
                deal_id = posted_deal_id(requests, requested.request_id)
                state = SettlementClient(chain, world.contract).deal_state(deal_id)
                assert state.status.name == "SETTLED"
            deals = {d["deal_id"]: d["payment_wei"] for d in bridge.call("deals")}
            payments = sum(deals.values())
            assert requests.owed(bridge_address) == payments + 2 * BOND_WEI
            assert requests.owed(example.address) == 2 * ESCROW_WEI - payments
            return

        def overturned(status: RequestStatus) -> bool:
            return status is RequestStatus.OPEN

        for requested in (attested, optimistic):
            # Posted by the bridge (its deal settled with the cheat's output), then overturned.
            await_status(requests, requested.request_id, bridge,
                         lambda s, r=requested: requests.request(r.request_id).round == 1)
            request = requests.request(requested.request_id)
            assert overturned(request.status) and request.claimant == "0x" + "0" * 40
            assert not example.read("answered", requested.request_id)
        challengers = [m for m in mediators if requests.owed(m.status["address"]) != 0]
        (challenger,) = challengers
        assert requests.owed(challenger.status["address"]) == BOND_WEI + BOND_WEI // 2
        # The requester got the bridge's whole bond (attested) and the other half (optimistic).
        assert requests.owed(example.address) == BOND_WEI + BOND_WEI - BOND_WEI // 2
        assert requests.owed(bridge_address) == 0
        assert not example.read("answered", attested.request_id)
        assert not example.read("answered", optimistic.request_id)
