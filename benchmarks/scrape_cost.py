"""What watching a node costs it: node CPU per request to each observe path and `status` call.

    python benchmarks/scrape_cost.py [--requests 100] [--rounds 5]

Starts one provider node (embedded chain, the default) with its metrics listener, then in
`--rounds` interleaved rounds (so every kind sees the same machine load) sends `--requests`
requests of each kind and reads the node process's CPU time around them:

- `/healthz` (nothing read), `/metrics` (status snapshot, peers, tallies; the chain section
  reused up to 60 s old), `/readyz` (status and peers, the chain read afresh; 503 here, as a
  node alone is not meshed, at the same cost);
- control `status` with the chain read afresh, and with `chain_max_age_s = 60`.

Prints the median per round, in ms of node CPU per request; writes
benchmarks/results/scrape-cost.json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psutil

from lilypad_p2p.localnet import LocalCluster

RESULTS = Path(__file__).parent / "results"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def node_cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="scrape-cost-") as tmp:
        cluster = LocalCluster(Path(tmp))
        with cluster.running():
            node = cluster.start_node("provider", roles=["provider"],
                                      extra_args=["--metrics-listen", f"127.0.0.1:{port}"])
            node.wait_ready()
            process = psutil.Process(node.process.pid)

            def fetch(path: str) -> Callable[[], None]:
                def get() -> None:
                    try:
                        with urllib.request.urlopen(base + path, timeout=30) as answer:
                            answer.read()
                    except urllib.error.HTTPError as refusal:  # /readyz: 503, not meshed alone
                        refusal.read()
                return get

            kinds: dict[str, Callable[[], None]] = {
                "healthz": fetch("/healthz"),
                "metrics": fetch("/metrics"),
                "readyz": fetch("/readyz"),
                "status, chain read afresh": lambda: node.call("status"),
                "status, chain_max_age_s=60": lambda: node.call("status",
                                                                {"chain_max_age_s": 60}),
            }
            for request in kinds.values():  # warm up: imports, caches, the first chain read
                request()
            per_round: dict[str, list[float]] = {kind: [] for kind in kinds}
            for _ in range(args.rounds):
                for kind, request in kinds.items():
                    before = node_cpu_s(process)
                    for _ in range(args.requests):
                        request()
                    spent = node_cpu_s(process) - before
                    per_round[kind].append(spent / args.requests * 1000)
                    time.sleep(0.5)
    figures = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "requests_per_round": args.requests, "rounds": args.rounds,
        "node_cpu_ms_per_request": {
            kind: {"median": round(statistics.median(values), 3),
                   "min": round(min(values), 3), "max": round(max(values), 3)}
            for kind, values in per_round.items()},
    }
    for kind, value in figures["node_cpu_ms_per_request"].items():
        print(f"{kind:30} {value['median']:7.2f} ms of node CPU per request "
              f"(rounds {value['min']:.2f}-{value['max']:.2f})")
    path = RESULTS / "scrape-cost.json"
    path.write_text(json.dumps(figures, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
