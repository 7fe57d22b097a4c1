"""On-chain requests end to end, per trust mode: request -> callback latency and total gas.

    python benchmarks/onchain.py [--requests 3] [--window 10]

Anvil (auto-mining, one block per transaction; the benchmark mines an empty block every
POLL_S while it waits, as a live chain would, since challenge windows end by block time), the
settlement, LilypadRequests and the StringJobClient example deployed, and six real node
processes: a provider (jobs in Docker), a solver, a --chain-bridge node, and three mediator
nodes re-running requests as the requester's consortium (k = 2). The example contract asks for
`--requests` hashes in attested mode, then as many in optimistic mode (challenge window
`--window` seconds; nobody challenges an honest result), one after another. For each: seconds
from the ask to the answered callback, and the gas of every transaction from the request's
block to its delivery's (requestJob, claim, openDeal, submitResult, settle, postResult, the
consortium's votes, deliver). One request at a time, so those blocks hold only its
transactions. Writes benchmarks/results/onchain.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lilypad_p2p.chain import (
    EXAMPLE_CLIENT,
    ContractClient,
    RequestMode,
    RequestsClient,
    TrustPolicy,
    artifact,
    deploy_contract,
    deploy_requests,
    open_rpc_chain,
)
from lilypad_p2p.localnet import market_world, node_identity, prepare_trusting_home
from lilypad_p2p.testing import chain_test_accounts, fund_on_anvil

ESCROW_WEI = 10**16
BOND_WEI = 10**15
REQUEST_WINDOW_S = 900
ANSWER_TIMEOUT_S = 300.0
POLL_S = 0.25
MEDIATORS = 3
THRESHOLD = 2
RESULTS = Path(__file__).parent / "results" / "onchain.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3, help="per mode")
    parser.add_argument("--window", type=int, default=10, help="optimistic challenge window, s")
    args = parser.parse_args()
    load_before = os.getloadavg()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="lilypad-onchain-bench-") as tmp, \
            market_world(Path(tmp)) as world:
        chain = open_rpc_chain(world.rpc_url)
        deployer, requester = chain_test_accounts(16)[14:16]
        fund_on_anvil(chain, [deployer, requester])
        requests_address = deploy_requests(chain, deployer, world.contract)
        example = ContractClient(chain, EXAMPLE_CLIENT, deploy_contract(
            chain, requester, EXAMPLE_CLIENT, requests_address), requester)
        requests = RequestsClient(chain, requests_address)

        names = [f"mediator-{i}" for i in range(MEDIATORS)]
        consortium = tuple(node_identity(world, n).address for n in names)

        def start(name: str, roles: list[str], boot: list[str], lines: str = "") -> Any:
            # The bridge claims only where it trusts k of the request's mediators.
            trusted = [world.mediator, *(consortium if name == "bridge" else ())]
            prepare_trusting_home(world, name, trusted, config_lines=lines)
            with (Path(tmp) / name / "config.toml").open("a") as config:
                config.write(f'requests = "{requests_address}"\n')
            node = world.cluster.start_node(name, roles=roles, bootstrap=boot)
            node.wait_ready()
            world.nodes[name] = node
            return node

        provider = start("provider", ["provider"], [])
        boot = [provider.dial_addr]
        start("solver", ["solver"], boot)
        for name in names:
            start(name, ["mediator"], boot)
        bridge = start("bridge", ["chain-bridge"], boot, "bridge_confirmations = 0\n")
        world.wait_until_known(bridge, [provider])
        decoders = [chain.w3.eth.contract(abi=artifact(name)["abi"])
                    for name in ("LilypadSettlement", "LilypadRequests", EXAMPLE_CLIENT)]
        policies = {
            "attested": TrustPolicy(consortium, THRESHOLD, RequestMode.ATTESTED, BOND_WEI),
            "optimistic": TrustPolicy(consortium, THRESHOLD, RequestMode.OPTIMISTIC, BOND_WEI,
                                      args.window),
        }
        for mode, policy in policies.items():
            for i in range(args.requests):
                started = time.monotonic()
                receipt = example.send("ask", "hash", json.dumps({"text": f"{mode} {i}"}).encode(),
                                       chain.now() + REQUEST_WINDOW_S, policy.as_abi(),
                                       value=ESCROW_WEI)
                (requested,) = requests.requested_in(receipt)
                while not example.read("answered", requested.request_id):
                    if time.monotonic() - started > ANSWER_TIMEOUT_S:
                        sys.exit(f"{mode} request {i} not answered:\n{bridge.log_tail()}")
                    chain.rpc(lambda: chain.w3.provider.make_request(  # type: ignore[attr-defined]
                        "evm_mine", []))
                    time.sleep(POLL_S)
                seconds = time.monotonic() - started
                last = _delivery_block(requests, requested.request_id, receipt.block_number)
                gas = _gas_between(chain, receipt.block_number, last,
                                   {world.contract, requests_address, example.address}, decoders)
                runs.append({"mode": mode, "seconds": round(seconds, 2), "gas": gas,
                             "gas_total": sum(gas.values())})
                print(f"{mode} {i}: {seconds:.1f} s, gas {sum(gas.values())} {gas}")
    summary: dict[str, Any] = {"requests_per_mode": args.requests,
                               "challenge_window_s": args.window,
                               "consortium": f"{THRESHOLD} of {MEDIATORS}",
                               "load_average_before": load_before,
                               "load_average_after": os.getloadavg()}
    for mode in policies:
        mine = [r for r in runs if r["mode"] == mode]
        summary[mode] = {
            "median_seconds": statistics.median(r["seconds"] for r in mine),
            "median_gas_total": statistics.median(r["gas_total"] for r in mine),
            "median_gas": {name: statistics.median(r["gas"].get(name, 0) for r in mine)
                           for name in sorted({n for r in mine for n in r["gas"]})},
        }
    print(json.dumps(summary, indent=1))
    RESULTS.write_text(json.dumps({**summary, "runs": runs}, indent=1) + "\n")


def _gas_between(chain: Any, first: int, last: int, contracts: set[str],
                 decoders: list[Any]) -> dict[str, int]:
    """Gas per function of the transactions to our contracts in blocks first..last."""
    gas: dict[str, int] = {}
    for number in range(first, last + 1):
        block = chain.rpc(lambda n=number: chain.w3.eth.get_block(n, full_transactions=True))
        for tx in block["transactions"]:
            if tx["to"] is None or tx["to"] not in contracts:
                continue
            receipt = chain.rpc(lambda h=tx["hash"]: chain.w3.eth.get_transaction_receipt(h))
            name = _function_name(decoders, bytes(tx["input"]).hex())
            gas[name] = gas.get(name, 0) + int(receipt["gasUsed"])
    return gas


def _function_name(decoders: list[Any], calldata_hex: str) -> str:
    for decoder in decoders:
        try:
            return decoder.decode_function_input("0x" + calldata_hex)[0].fn_name
        except ValueError:
            continue
    return calldata_hex[:8]


def _delivery_block(requests: RequestsClient, request_id: bytes, since: int) -> int:
    logs = requests.chain.rpc(lambda: requests.contract.events.ResultDelivered().get_logs(
        from_block=since, to_block="latest", argument_filters={"requestId": request_id}))
    return int(logs[0]["blockNumber"])


if __name__ == "__main__":
    main()
