"""A bridged request whose deal is disputed is closed by the k-of-n verdict: the bridge
spot-checks every job (`check_rate = 1`) and three mediators re-run it. PROVIDER_CORRECT: the
bridge delivers the result the verdict upheld. PROVIDER_WRONG (a provider that commits to wrong
outputs): nothing is delivered and the requester gets its whole escrow back at once (real nodes,
Docker, anvil)."""

from __future__ import annotations

import hashlib

import pytest
from bridge_world import ESCROW_WEI, ask, await_closed, deploy_requests_world, require_parts

from lilypad_p2p.chain import Outcome, RequestStatus, SettlementClient
from lilypad_p2p.testing._market import market_world
from lilypad_p2p.testing._mediation import (
    node_identity,
    prepare_trusting_home,
    start_trusting_node,
)

pytestmark = [pytest.mark.net, pytest.mark.chain, pytest.mark.docker, pytest.mark.slow]

MEDIATORS = 3
KNOWN_WITHIN_S = 60.0
BRIDGE_CONFIG = (f"bridge_confirmations = 0\ncheck_rate = 1.0\nconsortium_size = {MEDIATORS}\n"
                 "consortium_threshold = 2\n")


@pytest.mark.parametrize("honest", [True, False], ids=["provider-correct", "provider-wrong"])
def test_spot_checked_request_is_closed_by_the_verdict(tmp_path, honest):
    require_parts()
    with market_world(tmp_path) as world:
        names = [f"mediator-{i}" for i in range(MEDIATORS)]
        trusted = [node_identity(world, name).address for name in names]
        provider = start_trusting_node(world, "provider", roles=["provider"], trusted=trusted,
                                       config_lines="" if honest else "cheat_wrong_output = true")
        boot = [provider.dial_addr]
        start_trusting_node(world, "solver", roles=["solver"], trusted=trusted, bootstrap=boot)
        for name in names:
            start_trusting_node(world, name, roles=["mediator"], trusted=trusted, bootstrap=boot)
        prepare_trusting_home(world, "bridge", trusted, config_lines=BRIDGE_CONFIG)
        chain, example, requests = deploy_requests_world(world, tmp_path / "bridge")
        bridge = world.cluster.start_node("bridge", roles=["chain-bridge"], bootstrap=boot)
        bridge.wait_ready()
        world.nodes["bridge"] = bridge
        world.wait_until_known(bridge, [provider])
        world.cluster.wait_until(  # NodeRecords carry the mediators' sealing keys
            lambda: bridge.call("status")["known_nodes"] >= 1 + MEDIATORS,
            timeout_s=KNOWN_WITHIN_S, what="the bridge to know every mediator")

        requested = ask(example, chain, requests, "hash", {"text": "mediated"})

        closed = await_closed(requests, requested.request_id, bridge)
        (deal,) = bridge.call("deals")
        outcome = Outcome.PROVIDER_CORRECT if honest else Outcome.PROVIDER_WRONG
        assert (deal["phase"], deal["outcome"]) == ("resolved", outcome.name)
        deal_id = bytes.fromhex(deal["deal_id"][2:])
        state = SettlementClient(chain, world.contract).deal_state(deal_id)
        assert (state.status.name, state.outcome) == ("RESOLVED", outcome)
        if not honest:
            assert closed is RequestStatus.REFUNDED
            assert not example.read("answered", requested.request_id)
            assert requests.owed(example.address) == ESCROW_WEI
            assert requests.owed(bridge.status["address"]) == 0
            return
        assert closed is RequestStatus.DELIVERED
        assert requests.read("deliveredDeal", requested.request_id) == deal_id
        assert example.read("answers", requested.request_id).strip() == \
            hashlib.sha256(b"mediated").hexdigest()
        # The verdict paid the provider (from the bridge's settlement account); the escrow
        # reimburses the bridge that payment and returns the rest to the requester.
        payment = deal["payment_wei"]
        assert requests.owed(bridge.status["address"]) == payment
        assert requests.owed(example.address) == ESCROW_WEI - payment
