"""What one chain request costs a node in CPU: each layer we replaced beside its replacement.

    python benchmarks/chain_requests.py [--calls 300] [--rounds 5]

Against anvil, in one process, the two ways of each step (`replaced`: what nodes did before,
`ours`: what they do now) alternate in rounds, so the machine's drift falls on both alike; each
figure is the median over rounds of CPU ms per call:

- transport: `eth_blockNumber` through web3's `HTTPProvider` (requests) and through
  `KeptAliveHTTPProvider` (http.client on kept-alive connections, `chain/_http.py`);
- eth_call: the same call through web3's `eth.call` (its request formatters and offchain-lookup
  wrapper) and as the raw request `Chain.call` sends, both over the kept-alive transport;
- view: the settlement contract's `deals(id)` through web3's contract layer and through
  `ContractAbi` (`chain/_abi.py`) and `Chain.call`, over the kept-alive transport;
- encode: `openDeal`'s calldata by web3's `encode_abi` and by `ContractAbi.encode`;
- event: a `DealOpened` log (as `eth_getLogs` returns it through web3) decoded by web3's
  `process_log` and by `ContractAbi.decode_event`: every node replays every deal's events;
- deal ID: the EIP-712 digest computed afresh and as `Deal.deal_id` returns it (cached).

Writes benchmarks/results/chain-requests.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_abi import encode
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3.datastructures import AttributeDict

from lilypad_p2p.chain import Deal, Domain, deploy_settlement, open_rpc_chain
from lilypad_p2p.chain._abi import contract_abi
from lilypad_p2p.chain._artifacts import SETTLEMENT, settlement_abi
from lilypad_p2p.chain._http import KeptAliveHTTPProvider
from lilypad_p2p.localnet import chain_test_accounts, fund_on_anvil, running_anvil

RESULTS = Path(__file__).parent / "results" / "chain-requests.json"


def _cpu_ms_per_call(call: Callable[[], object], calls: int) -> float:
    started = time.process_time()
    for _ in range(calls):
        call()
    return 1000 * (time.process_time() - started) / calls


def _compare(replaced: Callable[[], object], ours: Callable[[], object], calls: int,
             rounds: int) -> dict[str, float]:
    replaced(), ours()  # connections open, caches warm
    measured: dict[str, list[float]] = {"replaced": [], "ours": []}
    for _ in range(rounds):
        measured["replaced"].append(_cpu_ms_per_call(replaced, calls))
        measured["ours"].append(_cpu_ms_per_call(ours, calls))
    replaced_ms, ours_ms = (statistics.median(measured[k]) for k in ("replaced", "ours"))
    return {"replaced_ms": round(replaced_ms, 4), "ours_ms": round(ours_ms, 4),
            "ours_over_replaced": round(ours_ms / replaced_ms, 3)}


def measure(calls: int, rounds: int) -> dict[str, Any]:
    accounts = chain_test_accounts(3)
    with running_anvil() as url:
        chain = open_rpc_chain(url)
        fund_on_anvil(chain, accounts)
        address = deploy_settlement(chain, accounts[0])
        plain = Web3(HTTPProvider(url), middleware=[])
        kept = Web3(KeptAliveHTTPProvider(url, 10.0), middleware=[])
        calls_table = contract_abi(SETTLEMENT)
        contract = kept.eth.contract(address=address, abi=settlement_abi())
        deal_id = b"\x01" * 32

        def view_ours() -> object:
            data = calls_table.encode("deals", [deal_id])
            return calls_table.decode("deals", chain.call({"to": address, "data": data}), address)

        read = {"to": address, "data": calls_table.encode("deals", [deal_id])}

        deal = Deal(job_creator=accounts[1].address, provider=accounts[2].address,
                    payment=10**18, collateral=10**18, mediation_fee=10**16,
                    mediators=(accounts[0].address,), threshold=1,
                    result_deadline=2_000_000_000, acceptance_window=600,
                    mediation_window=3600, job_spec_hash=b"\x0a" * 32,
                    module_hash=b"\x0b" * 32, salt=b"\x0c" * 32)
        open_args = [deal.terms_abi(), list(deal.mediators), b"\x11" * 65, b"\x22" * 65]
        opened = AttributeDict({
            "address": address, "blockNumber": 7, "logIndex": 0, "transactionIndex": 0,
            "transactionHash": HexBytes(b"\x09" * 32), "blockHash": HexBytes(b"\x08" * 32),
            "removed": False, "data": HexBytes(b""),
            "topics": [HexBytes(calls_table.event_topic("DealOpened")), HexBytes(deal_id),
                       HexBytes(encode(["address"], [deal.job_creator])),
                       HexBytes(encode(["address"], [deal.provider]))],
        })
        domain = Domain(chain.chain_id, address)
        return {
            "transport eth_blockNumber": _compare(
                lambda: plain.provider.make_request("eth_blockNumber", []),
                lambda: kept.provider.make_request("eth_blockNumber", []), calls, rounds),
            "eth_call": _compare(
                lambda: kept.eth.call(read), lambda: chain.call(read), calls, rounds),
            "view deals(id)": _compare(
                lambda: contract.functions.deals(deal_id).call(), view_ours, calls, rounds),
            "encode openDeal": _compare(
                lambda: contract.encode_abi("openDeal", args=open_args),
                lambda: calls_table.encode("openDeal", open_args), calls, rounds),
            "decode a DealOpened log": _compare(
                lambda: contract.events.DealOpened().process_log(opened),
                lambda: calls_table.decode_event(opened["topics"], opened["data"]), calls,
                rounds),
            "deal ID": _compare(
                lambda: domain.digest(deal.struct_hash()),
                lambda: deal.deal_id(domain), calls, rounds),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    load_before = os.getloadavg()
    figures = measure(args.calls, args.rounds)
    for step, row in figures.items():
        print(f"{step:28} replaced {row['replaced_ms']:.3f} ms   ours {row['ours_ms']:.3f} ms"
              f"   ours/replaced {row['ours_over_replaced']}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "calls": args.calls, "rounds": args.rounds, "cpu_ms_per_call": figures,
    }, indent=1) + "\n")


if __name__ == "__main__":
    main()
