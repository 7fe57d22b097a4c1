"""What one chain request costs a node in CPU: each layer we replaced beside its replacement.

    python benchmarks/chain_requests.py [--calls 300] [--rounds 5]

Against anvil, in one process, the two ways of each step (`replaced`: what nodes did before,
`ours`: what they do now) alternate in rounds, so the machine's drift falls on both alike; each
figure is the median over rounds of CPU ms per call:

- transport: `eth_blockNumber` through web3's `HTTPProvider` (requests) and through
  `KeptAliveHTTPProvider` (http.client on kept-alive connections, `chain/_http.py`);
- view: the settlement contract's `deals(id)` through web3's contract layer and through
  `ContractAbi` (`chain/_abi.py`), both over the kept-alive transport;
- encode: `openDeal`'s calldata by web3's `encode_abi` and by `ContractAbi.encode`;
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

from web3 import HTTPProvider, Web3

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
            answer = kept.eth.call({"to": address, "data": data})
            return calls_table.decode("deals", bytes(answer), address)

        deal = Deal(job_creator=accounts[1].address, provider=accounts[2].address,
                    payment=10**18, collateral=10**18, mediation_fee=10**16,
                    mediators=(accounts[0].address,), threshold=1,
                    result_deadline=2_000_000_000, acceptance_window=600,
                    mediation_window=3600, job_spec_hash=b"\x0a" * 32,
                    module_hash=b"\x0b" * 32, salt=b"\x0c" * 32)
        open_args = [deal.terms_abi(), list(deal.mediators), b"\x11" * 65, b"\x22" * 65]
        domain = Domain(chain.chain_id, address)
        return {
            "transport eth_blockNumber": _compare(
                lambda: plain.provider.make_request("eth_blockNumber", []),
                lambda: kept.provider.make_request("eth_blockNumber", []), calls, rounds),
            "view deals(id)": _compare(
                lambda: contract.functions.deals(deal_id).call(), view_ours, calls, rounds),
            "encode openDeal": _compare(
                lambda: contract.encode_abi("openDeal", args=open_args),
                lambda: calls_table.encode("openDeal", open_args), calls, rounds),
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
