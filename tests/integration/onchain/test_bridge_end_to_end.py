"""The chain bridge end to end: the example contract asks for a hash on anvil; real nodes
(a provider running Docker, a solver, a --chain-bridge node) match and run it; the answer lands
in the contract's storage (an answer over 1 KiB as its CID) and the money moves exactly as the
deal says."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from bridge_world import (
    BOND_WEI,
    BRIDGE_CONFIG,
    ESCROW_WEI,
    REQUEST_WINDOW_S,
    ask,
    await_closed,
    deploy_requests_world,
    mine,
    optimistic_policy,
    posted_deal_id,
    require_parts,
)

from lilypad_p2p.chain import RequestStatus, SettlementClient, result_cid_bytes
from lilypad_p2p.exec import result_cid
from lilypad_p2p.localnet import NODE_DEPOSIT_WEI, market_world

pytestmark = [pytest.mark.net, pytest.mark.chain, pytest.mark.docker, pytest.mark.slow]

BIG_OUTPUT_BYTES = 2048
# Nobody challenges here: the window only delays delivery.
WINDOW_S = 5


def test_example_contract_gets_its_answer_through_the_bridge(tmp_path):
    require_parts()
    with market_world(tmp_path) as world:
        chain, example, requests = deploy_requests_world(world)
        boot = world.start("provider", roles=["provider"])
        world.start("solver", roles=["solver"], bootstrap=[boot.dial_addr])
        bridge = world.start("bridge", roles=["chain-bridge"], bootstrap=[boot.dial_addr])
        world.wait_until_known(bridge, [boot])
        provider_address = boot.status["address"]
        bridge_address = bridge.status["address"]
        before = {a: world.balance(a) for a in (provider_address, bridge_address)}

        text = "hello from a contract"
        policy = optimistic_policy([world.mediator], window_s=WINDOW_S)
        receipt = example.send("ask", "hash", json.dumps({"text": text}).encode(),
                               chain.now() + REQUEST_WINDOW_S, policy.as_abi(),
                               value=ESCROW_WEI)
        (requested,) = requests.requested_in(receipt)
        request_id = requested.request_id

        assert await_closed(requests, request_id, bridge) is RequestStatus.DELIVERED

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
        assert posted_deal_id(requests, request_id) == bytes.fromhex(deal["deal_id"][2:])
        # The provider was paid the deal's price by the bridge, which the escrow reimburses;
        # the requester gets the rest of its escrow back.
        assert world.balance(provider_address) - before[provider_address] == payment
        assert before[bridge_address] - world.balance(bridge_address) == payment
        assert requests.owed(bridge_address) == payment + BOND_WEI
        assert requests.owed(example.address) == ESCROW_WEI - payment

        # An answer over 1 KiB reaches the contract as its CID; the bridge holds the bytes.
        receipt = example.send("ask", "random", json.dumps({"size": BIG_OUTPUT_BYTES}).encode(),
                               chain.now() + REQUEST_WINDOW_S, policy.as_abi(),
                               value=ESCROW_WEI)
        (big,) = requests.requested_in(receipt)
        assert await_closed(requests, big.request_id, bridge) is RequestStatus.DELIVERED
        assert example.read("answered", big.request_id)
        cid = example.read("answerCids", big.request_id)
        big_deal = next(d for d in bridge.call("deals") if d["deal_id"] == "0x" + posted_deal_id(
            requests, big.request_id).hex())
        tarball = Path(big_deal["result_path"]).read_bytes()
        assert cid == result_cid_bytes(hashlib.sha256(tarball).digest())
        assert big_deal["result_cid"] == result_cid(tarball)
        with tarfile.open(fileobj=io.BytesIO(tarball)) as archive:
            assert archive.getmember("random.bin").size == BIG_OUTPUT_BYTES


def test_restarted_bridge_serves_each_request_once(tmp_path):
    """The bridge submits a request while no provider is around and stops; another request is
    made while it is down; after its restart both are served: the first by the job it had
    submitted (one job, one deal, one delivery each). The restarted client posts its
    still-unmatched job offer again, so the solver that joins later sees it well before the
    offer's match timeout."""
    require_parts()
    with market_world(tmp_path) as world:
        chain, example, requests = deploy_requests_world(world)
        bridge = world.start("bridge", roles=["chain-bridge"])
        policy = optimistic_policy([world.mediator], window_s=WINDOW_S)
        first = ask(example, chain, requests, "hash", {"text": "twice?"}, policy)
        world.cluster.wait_until(lambda: len(bridge.call("deals")) == 1, timeout_s=30.0,
                                 what="the bridge to submit the request")
        (submitted,) = [d["key"] for d in bridge.call("deals")]
        assert bridge.stop() == 0
        while_down = ask(example, chain, requests, "hash", {"text": "while down"}, policy)
        bridge = world.restart(bridge, roles=["chain-bridge"])
        provider = world.start("provider", roles=["provider"], bootstrap=[bridge.dial_addr])
        world.start("solver", roles=["solver"], bootstrap=[bridge.dial_addr])
        world.wait_until_known(bridge, [provider])

        for requested, text in ((first, b"twice?"), (while_down, b"while down")):
            assert await_closed(requests, requested.request_id, bridge) is \
                RequestStatus.DELIVERED
            assert example.read("answers", requested.request_id).strip() == \
                hashlib.sha256(text).hexdigest()
        deals = {d["deal_id"]: d for d in bridge.call("deals")}
        assert [d["phase"] for d in deals.values()] == ["settled", "settled"], deals
        delivered = ["0x" + posted_deal_id(requests, r.request_id).hex()
                     for r in (first, while_down)]
        assert sorted(delivered) == sorted(deals)
        assert deals[delivered[0]]["key"] == submitted


def test_a_bridge_without_deposit_leaves_the_request_open_until_it_can_fund_it(tmp_path):
    """Claiming puts the bond at stake: a bridge whose free deposit cannot pay the job's max
    price does not claim (another bridge may serve the request), says so once, and claims
    and serves it once the operator deposits."""
    require_parts()
    with market_world(tmp_path) as world:
        identity = world.prepare_home("bridge", deposit_wei=0, config_lines=BRIDGE_CONFIG)
        chain, example, requests = deploy_requests_world(world, world.base_dir / "bridge")
        boot = world.start("provider", roles=["provider"])
        world.start("solver", roles=["solver"], bootstrap=[boot.dial_addr])
        bridge = world.start("bridge", roles=["chain-bridge"], bootstrap=[boot.dial_addr])
        world.wait_until_known(bridge, [boot])
        requested = ask(example, chain, requests, "hash", {"text": "funded later"},
                        optimistic_policy([world.mediator], window_s=WINDOW_S))
        request_id = requested.request_id

        world.cluster.wait_until(
            lambda: "bridge.request_deferred" in bridge.log_path.read_text(errors="replace"),
            timeout_s=60.0, what="the bridge to say it cannot fund the request")
        state = world.base_dir / "bridge" / "bridge.json"
        for _ in range(3):  # polls go by (each sees a new block): neither claimed nor dropped
            mine(chain)
            head = chain.block_number()
            world.cluster.wait_until(lambda h=head: json.loads(state.read_text())["head"] >= h,
                                     timeout_s=60.0, what="the bridge to poll again")
        assert requests.request(request_id).status is RequestStatus.OPEN
        assert bridge.call("deals") == []
        log = bridge.log_path.read_text(errors="replace")
        assert log.count("bridge.request_deferred") == 1, log
        assert "run `lilypad-p2p deposit <amount>`" in log

        world.settlement(identity).deposit(NODE_DEPOSIT_WEI)
        assert await_closed(requests, request_id, bridge) is RequestStatus.DELIVERED
        (deal,) = bridge.call("deals")
        assert requests.owed(identity.address) == deal["payment_wei"] + BOND_WEI
        assert bridge.process.poll() is None


def test_a_bridge_claims_no_more_requests_at_once_than_its_deposit_covers(tmp_path):
    """A claimed request's job locks its payment only when its deal opens: a bridge whose
    deposit covers one job's max price but not two claims one of two requests, leaves the
    other open to other bridges, and claims it once the first job's deal has locked its
    payment (the rest of the deposit then covers it)."""
    require_parts()
    with market_world(tmp_path) as world:
        identity = world.prepare_home("bridge", deposit_wei=ESCROW_WEI * 3 // 2,
                                      config_lines=BRIDGE_CONFIG)
        chain, example, requests = deploy_requests_world(world, world.base_dir / "bridge")
        bridge = world.start("bridge", roles=["chain-bridge"])
        policy = optimistic_policy([world.mediator], window_s=WINDOW_S)
        request_ids = [ask(example, chain, requests, "hash", {"text": text}, policy).request_id
                       for text in ("one", "two")]

        world.cluster.wait_until(
            lambda: "bridge.request_deferred" in bridge.log_path.read_text(errors="replace"),
            timeout_s=60.0, what="the bridge to say it cannot fund the second request yet")
        state = world.base_dir / "bridge" / "bridge.json"
        for _ in range(3):  # no provider yet: the claimed request's job cannot open a deal
            mine(chain)
            head = chain.block_number()
            world.cluster.wait_until(lambda h=head: json.loads(state.read_text())["head"] >= h,
                                     timeout_s=60.0, what="the bridge to poll again")
        statuses = {requests.request(r).status for r in request_ids}
        assert statuses == {RequestStatus.OPEN, RequestStatus.CLAIMED}

        provider = world.start("provider", roles=["provider"], bootstrap=[bridge.dial_addr])
        world.start("solver", roles=["solver"], bootstrap=[bridge.dial_addr])
        for request_id in request_ids:
            assert await_closed(requests, request_id, bridge) is RequestStatus.DELIVERED
        deals = bridge.call("deals")
        settled = [d for d in deals if d["phase"] == "settled"]
        assert len(settled) == 2
        paid = sum(d["payment_wei"] for d in settled)
        assert requests.owed(identity.address) == paid + 2 * BOND_WEI
        assert bridge.process.poll() is None and provider.process.poll() is None
