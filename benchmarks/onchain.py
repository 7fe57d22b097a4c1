"""On-chain requests end to end: request -> callback latency and gas per request (issue 9).

    python benchmarks/onchain.py [--requests 5] [--large 2]
    python benchmarks/onchain.py --paths-only      # gas of each LilypadRequests path, no nodes

Anvil (auto-mining: one block per transaction, so the bridge runs with bridge_confirmations = 0),
the settlement, LilypadRequests and the StringJobClient example deployed, and three real node
processes: a provider (jobs in Docker), a solver and a --chain-bridge node. The example contract
asks for `--requests` hashes one after another, then `--large` outputs of 2 KiB (the `random`
module), which reach the callback as their CID; for each: seconds and blocks from the mined
requestJob to the mined callback, and the gas of every transaction on its behalf (requestJob,
openDeal, submitResult if any, settle, deliver). Then, on a fresh embedded chain without nodes,
the gas of each way a request ends: `deliver` after Settled (inline, by CID), `deliverCid`,
`deliver` after a ProviderCorrect verdict, `refundFailed` after ProviderWrong and
NonDeterministic, `refund` after the deadline (median of `--samples`). Writes
benchmarks/results/onchain.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_utils import keccak

from lilypad_p2p.chain import (
    EXAMPLE_CLIENT,
    ContractClient,
    Deal,
    Outcome,
    RequestsClient,
    RequestStatus,
    SettlementClient,
    Verdict,
    artifact,
    deploy_contract,
    deploy_requests,
    deploy_settlement,
    open_rpc_chain,
)
from lilypad_p2p.exec import tar_directory
from lilypad_p2p.testing import (
    advance_chain_time,
    chain_test_accounts,
    embedded_test_chain,
    fund_on_anvil,
)
from lilypad_p2p.testing._market import market_world

ESCROW_WEI = 10**16
REQUEST_WINDOW_S = 900
ANSWER_TIMEOUT_S = 240.0
POLL_S = 0.05
RESULTS = Path(__file__).parent / "results" / "onchain.json"
LARGE_OUTPUT_BYTES = 2048


def _gas_for(chain: Any, first: int, last: int, contracts: set[str], deal_id: bytes,
             request_id: bytes) -> dict[str, int]:
    """Gas of the transactions in blocks first..last that act for this request or its deal."""
    gas: dict[str, int] = {}
    for number in range(first, last + 1):
        block = chain.rpc(lambda n=number: chain.w3.eth.get_block(n, full_transactions=True))
        for tx in block["transactions"]:
            if tx["to"] is None or tx["to"] not in contracts:
                continue
            receipt = chain.rpc(lambda h=tx["hash"]: chain.w3.eth.get_transaction_receipt(h))
            topics = {bytes(t) for log in receipt["logs"] for t in log["topics"][1:2]}
            if deal_id in topics or request_id in topics:
                name = bytes(tx["input"]).hex()
                gas[name] = gas.get(name, 0) + int(receipt["gasUsed"])
    return gas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5)
    parser.add_argument("--large", type=int, default=2,
                        help="further requests whose output (2 KiB) is delivered by CID")
    parser.add_argument("--samples", type=int, default=5, help="per contract path")
    parser.add_argument("--paths-only", action="store_true",
                        help="only the per-path gas on the embedded chain (no nodes, no Docker)")
    args = parser.parse_args()
    paths = _path_gas(args.samples)
    print("gas per way a request ends:", json.dumps(paths, indent=1))
    if args.paths_only:
        _merge_results({"path_gas": paths, "path_samples": args.samples})
        return
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="lilypad-onchain-bench-") as tmp, \
            market_world(Path(tmp)) as world:
        chain = open_rpc_chain(world.rpc_url)
        deployer, requester = chain_test_accounts(16)[14:16]
        fund_on_anvil(chain, [deployer, requester])
        requests_address = deploy_requests(chain, deployer, world.contract)
        example = ContractClient(chain, EXAMPLE_CLIENT, deploy_contract(
            chain, deployer, EXAMPLE_CLIENT, requests_address), requester)
        requests = RequestsClient(chain, requests_address)
        boot = world.start("provider", roles=["provider"])
        world.start("solver", roles=["solver"], bootstrap=[boot.dial_addr])
        world.prepare_home("bridge", config_lines="bridge_confirmations = 0\n")
        with (Path(tmp) / "bridge" / "config.toml").open("a") as config:
            config.write(f'requests = "{requests_address}"\n')
        bridge = world.start("bridge", roles=["chain-bridge"], bootstrap=[boot.dial_addr])
        world.wait_until_known(bridge, [boot])
        decoders = [chain.w3.eth.contract(abi=artifact(name)["abi"])
                    for name in ("LilypadSettlement", "LilypadRequests", EXAMPLE_CLIENT)]

        asks = [("hash", {"text": f"bench {i}"}) for i in range(args.requests)]
        asks += [("random", {"size": LARGE_OUTPUT_BYTES})] * args.large
        for i, (module, params) in enumerate(asks):
            started = time.monotonic()
            receipt = example.send("ask", module, json.dumps(params).encode(),
                                   chain.now() + REQUEST_WINDOW_S, value=ESCROW_WEI)
            (requested,) = requests.requested_in(receipt)
            while requests.request(requested.request_id).status is RequestStatus.PENDING:
                if time.monotonic() - started > ANSWER_TIMEOUT_S:
                    sys.exit(f"request {i} not answered:\n{bridge.log_tail()}")
                time.sleep(POLL_S)
            seconds = time.monotonic() - started
            deal_id = bytes(requests.read("deliveredDeal", requested.request_id))
            delivered_block = _delivery_block(chain, requests, requested.request_id,
                                              receipt.block_number)
            gas = _gas_for(chain, receipt.block_number, delivered_block,
                           {world.contract, requests_address, example.address}, deal_id,
                           requested.request_id)
            named = {_function_name(decoders, k): v for k, v in gas.items()}
            runs.append({"module": module, "by_cid": module == "random",
                         "seconds": round(seconds, 3),
                         "blocks": delivered_block - receipt.block_number,
                         "gas": named, "gas_total": sum(gas.values()),
                         "answered": example.read("answered", requested.request_id)})
            print(f"request {i} ({module}): {seconds:.2f} s, {runs[-1]['blocks']} blocks, "
                  f"gas {named}")
    inline = [r for r in runs if not r["by_cid"]]
    by_cid = [r for r in runs if r["by_cid"]]
    summary = {
        "requests": args.requests,
        "median_seconds": statistics.median(r["seconds"] for r in inline),
        "median_blocks": statistics.median(r["blocks"] for r in inline),
        "median_gas_total": statistics.median(r["gas_total"] for r in inline),
        "median_deliver_gas": statistics.median(r["gas"].get("deliver", 0) for r in inline),
        "large_requests": args.large,
        "large_median_seconds": statistics.median(r["seconds"] for r in by_cid)
        if by_cid else None,
        "large_median_deliver_gas": statistics.median(r["gas"].get("deliver", 0)
                                                      for r in by_cid) if by_cid else None,
        "all_answered": all(r["answered"] for r in runs),
        "load_average": os.getloadavg(),
        "runs": runs,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=1))
    _merge_results({**summary, "path_gas": paths, "path_samples": args.samples})


def _merge_results(figures: dict[str, Any]) -> None:
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    RESULTS.write_text(json.dumps({**previous, **figures}, indent=1) + "\n")


def _path_gas(samples: int) -> dict[str, int]:
    """Median gasUsed of each way a request ends, each sample on a fresh request and deal."""
    chain = embedded_test_chain()
    deployer, bridge, provider, requester, *mediators = chain_test_accounts()
    settlement = SettlementClient(chain, deploy_settlement(
        chain, deployer, withdraw_notice_s=60, min_mediator_stake=10**18), deployer)
    as_bridge, as_provider = settlement.with_account(bridge), settlement.with_account(provider)
    as_bridge.deposit(50 * 10**18)
    as_provider.deposit(50 * 10**18)
    consortium = sorted((settlement.with_account(m) for m in mediators[:3]),
                        key=lambda m: int(m.account.address, 16))
    for mediator in consortium:
        mediator.register_mediator(10**18)
    requests = RequestsClient(chain, deploy_requests(chain, deployer, settlement.address),
                              requester)
    as_job_creator = requests.with_account(bridge)
    small, large = _tarball(b"x" * 64), _tarball(os.urandom(LARGE_OUTPUT_BYTES))

    def request_and_deal(tarball: bytes) -> tuple[bytes, Deal, bytes]:
        request_id = requests.request_job("hash", b"{}", max_price=10**16,
                                          deadline=chain.now() + 60, callback_gas=0).request_id
        deal = Deal(bridge.address, provider.address, 10**15, 2 * 10**15, 10**14,
                    tuple(m.account.address for m in consortium), 2, chain.now() + 600, 600,
                    600, os.urandom(32), keccak(text="hash"), request_id)
        as_bridge.open_deal(deal, as_bridge.sign(deal), as_provider.sign(deal))
        digest = hashlib.sha256(tarball).digest()
        commitment = as_provider.sign(as_provider.result_commitment(deal, digest))
        as_provider.submit_result(deal, digest, commitment)
        return request_id, deal, commitment

    def settled(tarball: bytes) -> tuple[bytes, Deal, bytes, bytes]:
        request_id, deal, commitment = request_and_deal(tarball)
        digest = hashlib.sha256(tarball).digest()
        acceptance = as_bridge.sign(as_bridge.acceptance(deal, digest))
        as_bridge.settle(deal, digest, acceptance)
        return request_id, deal, commitment, acceptance

    def resolved(outcome: Outcome) -> tuple[bytes, Deal, bytes]:
        request_id, deal, commitment = request_and_deal(small)
        as_bridge.dispute(deal)
        upheld = hashlib.sha256(small).digest() if outcome is not Outcome.PROVIDER_WRONG \
            else os.urandom(32)
        verdict = Verdict(settlement.deal_id(deal), outcome, upheld)
        settlement.resolve(deal, verdict, [m.sign(verdict) for m in consortium[:2]])
        return request_id, deal, commitment

    def inline() -> int:
        request_id, deal, commitment, acceptance = settled(small)
        return requests.deliver(request_id, deal, small, commitment, acceptance).gas_used

    def by_cid() -> int:
        request_id, deal, commitment, acceptance = settled(large)
        return requests.deliver(request_id, deal, large, commitment, acceptance).gas_used

    def deliver_cid() -> int:
        request_id, deal, commitment, acceptance = settled(large)
        return as_job_creator.deliver_cid(request_id, deal, hashlib.sha256(large).digest(),
                                          commitment, acceptance).gas_used

    def provider_correct() -> int:
        request_id, deal, commitment = resolved(Outcome.PROVIDER_CORRECT)
        return requests.deliver(request_id, deal, small, commitment, b"").gas_used

    def failed(outcome: Outcome) -> int:
        request_id, deal, _ = resolved(outcome)
        return requests.refund_failed(request_id, deal).gas_used

    def after_deadline() -> int:
        requested = requests.request_job("hash", b"{}", max_price=10**16,
                                         deadline=chain.now() + 5, callback_gas=0)
        advance_chain_time(chain, 6)
        return requests.refund(requested.request_id).gas_used

    measured: dict[str, Callable[[], int]] = {
        "deliver (settled, 64-byte output inline)": inline,
        f"deliver (settled, {LARGE_OUTPUT_BYTES}-byte output by CID)": by_cid,
        "deliverCid (settled, no tarball)": deliver_cid,
        "deliver (resolved ProviderCorrect)": provider_correct,
        "refundFailed (resolved ProviderWrong)": lambda: failed(Outcome.PROVIDER_WRONG),
        "refundFailed (resolved NonDeterministic)": lambda: failed(Outcome.NON_DETERMINISTIC),
        "refund (after the deadline)": after_deadline,
    }
    return {name: int(statistics.median(run() for _ in range(samples)))
            for name, run in measured.items()}


def _tarball(output: bytes) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "answer.txt").write_bytes(output)
        return tar_directory(Path(tmp), max_bytes=1 << 20)


def _function_name(decoders: list[Any], calldata_hex: str) -> str:
    for decoder in decoders:
        try:
            return decoder.decode_function_input("0x" + calldata_hex)[0].fn_name
        except ValueError:
            continue
    return calldata_hex[:8]


def _delivery_block(chain: Any, requests: RequestsClient, request_id: bytes, since: int) -> int:
    logs = chain.rpc(lambda: requests.contract.events.ResultDelivered().get_logs(
        from_block=since, to_block="latest", argument_filters={"requestId": request_id}))
    return int(logs[0]["blockNumber"])


if __name__ == "__main__":
    main()
