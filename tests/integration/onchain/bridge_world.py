"""Helpers for the bridge tests: LilypadRequests and the example client deployed on a
`market_world`'s anvil, the bridge's home pointing at them, and waiting for a request to close
(while a block is mined every poll, as on a live chain: anvil here mines only on demand, and
challenge windows end by block time)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from lilypad_p2p.chain import (
    EXAMPLE_CLIENT,
    Chain,
    ContractClient,
    RequestedJob,
    RequestMode,
    RequestsClient,
    RequestStatus,
    TrustPolicy,
    deploy_contract,
    deploy_requests,
    open_rpc_chain,
)
from lilypad_p2p.testing import (
    chain_test_accounts,
    fund_on_anvil,
    require_anvil,
    require_docker,
)

ESCROW_WEI = 10**16
BOND_WEI = 10**15
# Long enough for a checker to re-run a job in Docker and challenge on a loaded machine.
CHALLENGE_WINDOW_S = 45
REQUEST_WINDOW_S = 900
ANSWERED_WITHIN_S = 240.0
POLL_S = 0.5
# anvil mines only on demand here: a request would never get a block on top of it.
BRIDGE_CONFIG = "bridge_confirmations = 0\n"


def require_parts() -> None:
    require_anvil()
    require_docker("the provider runs the job in Docker")


def deploy_requests_world(
    world: Any, home: Path | None = None, *, bridge_config: str = BRIDGE_CONFIG
) -> tuple[Chain, ContractClient, RequestsClient]:
    """Deploy LilypadRequests and the example client; prepare the bridge's home (named
    "bridge", unless `home` is one already prepared) with `requests` in its [chain] table."""
    chain = open_rpc_chain(world.rpc_url)
    deployer, requester = chain_test_accounts(16)[14:16]
    fund_on_anvil(chain, [deployer, requester])
    requests_address = deploy_requests(chain, deployer, world.contract)
    example = ContractClient(chain, EXAMPLE_CLIENT,
                             deploy_contract(chain, requester, EXAMPLE_CLIENT, requests_address),
                             requester)
    if home is None:
        world.prepare_home("bridge", config_lines=bridge_config)
        home = world.base_dir / "bridge"
    with (home / "config.toml").open("a") as config:  # [chain] is the file's last table
        config.write(f'requests = "{requests_address}"\n')
    return chain, example, RequestsClient(chain, requests_address)


def optimistic_policy(mediators: list[str], threshold: int = 1,
                      window_s: int = CHALLENGE_WINDOW_S) -> TrustPolicy:
    return TrustPolicy(tuple(mediators), threshold, RequestMode.OPTIMISTIC, BOND_WEI, window_s)


def attested_policy(mediators: list[str], threshold: int) -> TrustPolicy:
    return TrustPolicy(tuple(mediators), threshold, RequestMode.ATTESTED, BOND_WEI)


def ask(example: ContractClient, chain: Chain, requests: RequestsClient, module: str,
        params: dict[str, Any], policy: TrustPolicy) -> RequestedJob:
    receipt = example.send("ask", module, json.dumps(params).encode(),
                           chain.now() + REQUEST_WINDOW_S, policy.as_abi(), value=ESCROW_WEI)
    (requested,) = requests.requested_in(receipt)
    return requested


def mine(chain: Chain) -> None:
    chain.rpc(lambda: chain.w3.provider.make_request("evm_mine", []))  # type: ignore[attr-defined]


def await_status(requests: RequestsClient, request_id: bytes, node: Any,
                 done: Any = RequestStatus.is_final.fget) -> RequestStatus:
    """Until `done(status)` (default: delivered or refunded), mining a block each poll."""
    deadline = time.monotonic() + ANSWERED_WITHIN_S
    while not done(status := requests.request(request_id).status):
        if time.monotonic() > deadline:
            pytest.fail(f"request still {status.name} after {ANSWERED_WITHIN_S} s:\n"
                        f"{node.log_tail()}")
        mine(requests.chain)
        time.sleep(POLL_S)  # polling the chain with a bounded deadline
    return status


def await_closed(requests: RequestsClient, request_id: bytes, bridge: Any) -> RequestStatus:
    return await_status(requests, request_id, bridge)


def posted_deal_id(requests: RequestsClient, request_id: bytes) -> bytes:
    """The deal of the request's last posted result (its ResultPosted event)."""
    logs = requests.logs_between("ResultPosted", 0, requests.chain.block_number())
    return bytes([log for log in logs if bytes(log["args"]["requestId"]) == request_id][-1][
        "args"]["dealId"])
