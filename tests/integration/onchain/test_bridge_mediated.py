"""A bridged request whose deal the bridge spot-checks: the bridge checks every job
(`check_rate = 1`) and three mediators re-run it off chain. They agree (PROVIDER_CORRECT), so
the deal is accepted and settles like an unchecked one (no dispute on chain), and the bridge
posts and delivers the result the check upheld (real nodes, Docker, anvil). The requester's own
trust is separate (test_bridge_modes.py): here it is an optimistic policy nobody challenges."""

from __future__ import annotations

import hashlib

import pytest
from bridge_world import (
    BOND_WEI,
    ESCROW_WEI,
    ask,
    await_closed,
    deploy_requests_world,
    optimistic_policy,
    posted_deal_id,
    require_parts,
)

from lilypad_p2p.chain import Outcome, RequestStatus, SettlementClient
from lilypad_p2p.localnet import (
    market_world,
    node_identity,
    prepare_trusting_home,
    start_trusting_node,
)

pytestmark = [pytest.mark.net, pytest.mark.chain, pytest.mark.docker, pytest.mark.slow]

MEDIATORS = 3
KNOWN_WITHIN_S = 60.0
BRIDGE_CONFIG = (f"bridge_confirmations = 0\ncheck_rate = 1.0\nconsortium_size = {MEDIATORS}\n"
                 "consortium_threshold = 2\n")


def test_spot_checked_request_is_delivered_after_the_verdict(tmp_path):
    require_parts()
    with market_world(tmp_path) as world:
        names = [f"mediator-{i}" for i in range(MEDIATORS)]
        trusted = [node_identity(world, name).address for name in names]
        provider = start_trusting_node(world, "provider", roles=["provider"], trusted=trusted)
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
            lambda: bridge.holds_records(trusted),
            timeout_s=KNOWN_WITHIN_S, what="the bridge to know every mediator")

        requested = ask(example, chain, requests, "hash", {"text": "mediated"},
                        optimistic_policy(trusted, window_s=5))

        closed = await_closed(requests, requested.request_id, bridge)
        (deal,) = bridge.call("deals")
        outcome = Outcome.PROVIDER_CORRECT
        assert (deal["phase"], deal["check_outcome"]) == ("settled", outcome.name)
        deal_id = bytes.fromhex(deal["deal_id"][2:])
        state = SettlementClient(chain, world.contract).deal_state(deal_id)
        assert state.status.name == "SETTLED"
        assert closed is RequestStatus.DELIVERED
        assert posted_deal_id(requests, requested.request_id) == deal_id
        assert example.read("answers", requested.request_id).strip() == \
            hashlib.sha256(b"mediated").hexdigest()
        # The deal paid the provider (from the bridge's settlement account); the escrow
        # reimburses the bridge that payment and returns the rest to the requester.
        payment = deal["payment_wei"]
        assert requests.owed(bridge.status["address"]) == payment + BOND_WEI
        assert requests.owed(example.address) == ESCROW_WEI - payment
