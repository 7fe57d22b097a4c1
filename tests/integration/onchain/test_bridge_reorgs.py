"""The bridge acts on a request only after `bridge_confirmations` blocks: a request that a reorg
removes before then is never served, while the one that replaced its block is (real nodes,
Docker, anvil; the reorg is anvil's evm_snapshot/evm_revert, which drops the request's block,
then a different transaction at the same height)."""

from __future__ import annotations

import json

import pytest
from bridge_world import (
    ask,
    await_closed,
    deploy_requests_world,
    optimistic_policy,
    posted_deal_id,
    require_parts,
)

from lilypad_p2p.chain import Chain, RequestStatus
from lilypad_p2p.localnet import market_world

pytestmark = [pytest.mark.net, pytest.mark.chain, pytest.mark.docker, pytest.mark.slow]

CONFIRMATIONS = 2
SEEN_WITHIN_S = 30.0


def _rpc(chain: Chain, method: str, params: list[object]) -> object:
    answer = chain.rpc(lambda: chain.w3.provider.make_request(  # type: ignore[attr-defined]
        method, params))
    if "error" in answer:
        raise AssertionError(f"{method}: {answer['error']}")
    return answer["result"]


def test_reorged_out_request_is_never_served(tmp_path):
    require_parts()
    with market_world(tmp_path) as world:
        chain, example, requests = deploy_requests_world(
            world, bridge_config=f"bridge_confirmations = {CONFIRMATIONS}\n")
        provider = world.start("provider", roles=["provider"])
        world.start("solver", roles=["solver"], bootstrap=[provider.dial_addr])
        bridge = world.start("bridge", roles=["chain-bridge"], bootstrap=[provider.dial_addr])
        world.wait_until_known(bridge, [provider])
        state = tmp_path / "bridge" / "bridge.json"

        def bridge_polled(block: int) -> bool:
            return state.exists() and json.loads(state.read_text())["head"] >= block

        policy = optimistic_policy([world.mediator], window_s=5)
        snapshot = _rpc(chain, "evm_snapshot", [])
        doomed = ask(example, chain, requests, "hash", {"text": "reorged out"}, policy)
        world.cluster.wait_until(lambda: bridge_polled(doomed.block_number),
                                 timeout_s=SEEN_WITHIN_S, what="the bridge to see the request")
        assert bridge.call("deals") == [], "acted on a request with no confirmations"

        assert _rpc(chain, "evm_revert", [snapshot]) is True  # the request's block is gone
        chain.resync_nonces()
        assert requests.request(doomed.request_id).status is RequestStatus.NONE
        kept = ask(example, chain, requests, "hash", {"text": "kept"}, policy)
        assert kept.block_number == doomed.block_number  # another block at the same height
        world.cluster.wait_until(lambda: bridge_polled(kept.block_number),
                                 timeout_s=SEEN_WITHIN_S, what="the bridge to see the request")
        assert bridge.call("deals") == []
        _rpc(chain, "anvil_mine", [hex(CONFIRMATIONS)])

        assert await_closed(requests, kept.request_id, bridge) is RequestStatus.DELIVERED

        (deal,) = bridge.call("deals")
        assert deal["phase"] == "settled"
        assert posted_deal_id(requests, kept.request_id) == bytes.fromhex(deal["deal_id"][2:])
        assert example.read("answered", kept.request_id)
        assert requests.request(doomed.request_id).status is RequestStatus.NONE
        assert not example.read("answered", doomed.request_id)
