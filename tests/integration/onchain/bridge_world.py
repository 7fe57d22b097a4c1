"""Helpers for the bridge tests: LilypadRequests and the example client deployed on a
`market_world`'s anvil, the bridge's home pointing at them, and waiting for a request to close."""

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
    RequestsClient,
    RequestStatus,
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
                             deploy_contract(chain, deployer, EXAMPLE_CLIENT, requests_address),
                             requester)
    if home is None:
        world.prepare_home("bridge", config_lines=bridge_config)
        home = world.base_dir / "bridge"
    with (home / "config.toml").open("a") as config:  # [chain] is the file's last table
        config.write(f'requests = "{requests_address}"\n')
    return chain, example, RequestsClient(chain, requests_address)


def ask(example: ContractClient, chain: Chain, requests: RequestsClient, module: str,
        params: dict[str, Any]) -> RequestedJob:
    receipt = example.send("ask", module, json.dumps(params).encode(),
                           chain.now() + REQUEST_WINDOW_S, value=ESCROW_WEI)
    (requested,) = requests.requested_in(receipt)
    return requested


def await_closed(requests: RequestsClient, request_id: bytes, bridge: Any) -> RequestStatus:
    """Until the request is no longer pending (delivered or refunded); its final status."""
    deadline = time.monotonic() + ANSWERED_WITHIN_S
    while (status := requests.request(request_id).status) is RequestStatus.PENDING:
        if time.monotonic() > deadline:
            pytest.fail(f"no answer after {ANSWERED_WITHIN_S} s:\n{bridge.log_tail()}")
        time.sleep(POLL_S)  # polling the chain with a bounded deadline
    return status
