"""The chain bridge end to end: the example contract asks for a hash on anvil; real nodes
(a provider running Docker, a solver, a --chain-bridge node) match and run it; the answer lands
in the contract's storage and the money moves exactly as the deal says."""

from __future__ import annotations

import hashlib
import json
import time

import pytest

from lilypad_p2p.chain import (
    EXAMPLE_CLIENT,
    ContractClient,
    RequestsClient,
    RequestStatus,
    SettlementClient,
    deploy_contract,
    deploy_requests,
    open_rpc_chain,
)
from lilypad_p2p.testing import chain_test_accounts, fund_on_anvil, require_real
from lilypad_p2p.testing._chain import anvil_binary
from lilypad_p2p.testing._market import market_world

pytestmark = [pytest.mark.net, pytest.mark.chain, pytest.mark.docker, pytest.mark.slow]

ESCROW_WEI = 10**16
REQUEST_WINDOW_S = 900
ANSWERED_WITHIN_S = 240.0
POLL_S = 0.5


def _require_parts() -> None:
    import docker

    if anvil_binary() is None:
        require_real("anvil", "npm ci in contracts/ installs it")
    try:
        docker.from_env().ping()
    except Exception:
        require_real("docker", "the provider runs the job in Docker")


def _deploy(world, tmp_path):
    """LilypadRequests and the example client on the world's anvil; the bridge's home."""
    chain = open_rpc_chain(world.rpc_url)
    deployer, requester = chain_test_accounts(16)[14:16]
    fund_on_anvil(chain, [deployer, requester])
    requests_address = deploy_requests(chain, deployer, world.contract)
    example = ContractClient(chain, EXAMPLE_CLIENT,
                             deploy_contract(chain, deployer, EXAMPLE_CLIENT, requests_address),
                             requester)
    world.prepare_home("bridge")
    with (tmp_path / "bridge" / "config.toml").open("a") as config:
        config.write(f'requests = "{requests_address}"\n')
    return chain, example, RequestsClient(chain, requests_address)


def _await_delivery(requests, request_id, bridge):
    deadline = time.monotonic() + ANSWERED_WITHIN_S
    while requests.request(request_id).status is RequestStatus.PENDING:
        if time.monotonic() > deadline:
            pytest.fail(f"no answer after {ANSWERED_WITHIN_S} s:\n{bridge.log_tail()}")
        time.sleep(POLL_S)  # polling the chain with a bounded deadline


def test_example_contract_gets_its_answer_through_the_bridge(tmp_path):
    _require_parts()
    with market_world(tmp_path) as world:
        chain, example, requests = _deploy(world, tmp_path)
        boot = world.start("provider", roles=["provider"])
        world.start("solver", roles=["solver"], bootstrap=[boot.dial_addr])
        bridge = world.start("bridge", roles=["chain-bridge"], bootstrap=[boot.dial_addr])
        world.wait_until_known(bridge, [boot])
        provider_address = boot.status["address"]
        bridge_address = bridge.status["address"]
        before = {a: world.balance(a) for a in (provider_address, bridge_address)}

        text = "hello from a contract"
        receipt = example.send("ask", "hash", json.dumps({"text": text}).encode(),
                               chain.now() + REQUEST_WINDOW_S, value=ESCROW_WEI)
        (requested,) = requests.requested_in(receipt)
        request_id = requested.request_id

        _await_delivery(requests, request_id, bridge)

        assert example.read("answered", request_id), "delivered, but the callback failed"
        answer = example.read("answers", request_id)
        assert answer.strip() == hashlib.sha256(text.encode()).hexdigest()
        (deal,) = bridge.call("deals")
        assert deal["phase"] == "settled"
        payment = deal["payment_wei"]
        assert 0 < payment <= ESCROW_WEI
        settlement = SettlementClient(chain, world.contract)
        state = settlement.deal_state(bytes.fromhex(deal["deal_id"][2:]))
        assert state.status.name == "SETTLED"
        assert requests.read("deliveredDeal", request_id) == bytes.fromhex(deal["deal_id"][2:])
        # The provider was paid the deal's price by the bridge, which the escrow reimburses;
        # the requester gets the rest of its escrow back.
        assert world.balance(provider_address) - before[provider_address] == payment
        assert before[bridge_address] - world.balance(bridge_address) == payment
        assert requests.owed(bridge_address) == payment
        assert requests.owed(example.address) == ESCROW_WEI - payment


def test_restarted_bridge_serves_each_request_once(tmp_path):
    """The bridge submits a request while no provider is around, restarts, and the request is
    then served by the job it had submitted: one deal, one delivery."""
    _require_parts()
    with market_world(tmp_path) as world:
        chain, example, requests = _deploy(world, tmp_path)
        bridge = world.start("bridge", roles=["chain-bridge"])
        receipt = example.send("ask", "hash", json.dumps({"text": "twice?"}).encode(),
                               chain.now() + REQUEST_WINDOW_S, value=ESCROW_WEI)
        (requested,) = requests.requested_in(receipt)
        world.cluster.wait_until(lambda: len(bridge.call("deals")) == 1, timeout_s=30.0,
                                 what="the bridge to submit the request")
        assert bridge.stop() == 0
        bridge = world.restart(bridge, roles=["chain-bridge"])
        provider = world.start("provider", roles=["provider"], bootstrap=[bridge.dial_addr])
        world.start("solver", roles=["solver"], bootstrap=[bridge.dial_addr])
        world.wait_until_known(bridge, [provider])

        _await_delivery(requests, requested.request_id, bridge)

        assert example.read("answers", requested.request_id).strip() == \
            hashlib.sha256(b"twice?").hexdigest()
        deals = bridge.call("deals")
        settled = [d for d in deals if d["phase"] == "settled"]
        assert len(settled) == 1, [(d["key"], d["phase"], d["error"]) for d in deals]
        assert requests.read("deliveredDeal", requested.request_id) == \
            bytes.fromhex(settled[0]["deal_id"][2:])
        # A job that found no match within its match timeout is submitted again only after it
        # ended (never opened), so the restart itself added no second job.
        submitted_ms = settled[0]["transitions"][0]["at_ms"]
        for other in deals:
            if other is settled[0]:
                continue
            assert other["phase"] == "cancelled" and other["deal_id"] is None, other
            assert other["transitions"][-1]["at_ms"] <= submitted_ms, (other, settled[0])
