"""The market end to end: offer -> signed deal, submit -> result, and sustained jobs/s.

    python benchmarks/market.py [--latency-jobs 10] [--burst-jobs 36]

A real market on this machine (anvil, 3 providers, 2 solvers, 1 client; every node a real
`lilypad-p2p node` process; jobs are the trivial `hash` module in Docker). Figures come from
the client's own deal log (each transition is persisted with its time):

- offer -> signed deal: from the job offer's creation to the provider's countersignature
  (solver-matched, so it includes waiting for the epoch to close);
- submit -> result: from the job offer's creation to the verified, decrypted result;
- jobs/s sustained: a burst of jobs posted at once, from the first post to the last settlement,
  once solver-matched and once targeted (skipping the solvers).

Latency jobs are posted one at a time, each after the previous one's result. Writes
benchmarks/results/market.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from lilypad_p2p.localnet import MarketWorld, NodeProcess, market_world
from lilypad_p2p.market import EPOCH_MS

OFFER_TO_DEAL_TARGET_MS = EPOCH_MS + 300
SUBMIT_TO_RESULT_TARGET_MS = 2500
FINAL = {"settled", "rejected", "cancelled", "timed_out"}
JOB_TIMEOUT_S = 300.0
RESULTS = Path(__file__).parent / "results" / "market.json"


def _at(deal: dict[str, Any], phase: str) -> int:
    return next(t["at_ms"] for t in deal["transitions"] if t["to"] == phase)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": round(statistics.median(values), 1),
        "p99": round(_percentile(values, 0.99), 1),
        "max": round(max(values), 1),
    }


def _job(i: int, target: str | None = None) -> dict[str, Any]:
    job: dict[str, Any] = {"module": "hash", "params": {"text": f"benchmark job {i}"}}
    if target is not None:
        job["target"] = target
    return job


def measure_latency(world: MarketWorld, client: NodeProcess, jobs: int) -> dict[str, Any]:
    offer_to_deal, submit_to_result = [], []
    for i in range(jobs):
        key = client.call("submit", _job(i))["key"]
        deal = world.wait_for_phase(client, key, {"accepted", *FINAL}, timeout_s=JOB_TIMEOUT_S)
        if deal["phase"] not in ("accepted", "settled"):
            raise SystemExit(f"latency job {i} ended {deal['phase']}: {deal['error']}")
        offered = _at(deal, "offered")
        offer_to_deal.append(_at(deal, "agreed") - offered)
        submit_to_result.append(_at(deal, "accepted") - offered)
    return {"offer_to_deal_ms": _summary(offer_to_deal),
            "submit_to_result_ms": _summary(submit_to_result)}


def measure_burst(
    world: MarketWorld, client: NodeProcess, jobs: int, targets: list[str] | None
) -> dict[str, Any]:
    started = time.monotonic()
    keys = [
        client.call("submit", _job(1000 + i, targets[i % len(targets)] if targets else None))
        ["key"] for i in range(jobs)
    ]
    ends = []
    for key in keys:
        deal = world.wait_for_phase(client, key, FINAL, timeout_s=JOB_TIMEOUT_S)
        if deal["phase"] != "settled":
            raise SystemExit(f"burst job ended {deal['phase']}: {deal['error']}")
        ends.append(_at(deal, "settled"))
    wall_s = time.monotonic() - started
    return {"jobs": jobs, "wall_s": round(wall_s, 1), "jobs_per_s": round(jobs / wall_s, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency-jobs", type=int, default=10)
    parser.add_argument("--burst-jobs", type=int, default=36)
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="lilypad-bench-") as tmp, market_world(
        Path(tmp)
    ) as world:
        boot = world.start("provider-1", roles=["provider"])
        providers = [boot] + [
            world.start(f"provider-{i}", roles=["provider"], bootstrap=[boot.dial_addr])
            for i in (2, 3)
        ]
        for i in (1, 2):
            world.start(f"solver-{i}", roles=["solver"], bootstrap=[boot.dial_addr])
        # Solvers hold matched capacity for their hold time (30 s), so a solver-matched burst
        # beyond the market's capacity waits longer than the default 60 s match timeout.
        client = world.start("client", roles=["client"], bootstrap=[boot.dial_addr],
                             config_lines="match_timeout_s = 280\n")
        world.wait_until_known(client, providers)
        latency = measure_latency(world, client, args.latency_jobs)
        print(f"offer -> signed deal (ms): {latency['offer_to_deal_ms']}")
        print(f"submit -> result (ms):     {latency['submit_to_result_ms']}")
        targets = [p.status["address"] for p in providers]
        targeted = measure_burst(world, client, args.burst_jobs, targets)
        print(f"targeted burst:      {targeted}")
        matched = measure_burst(world, client, args.burst_jobs, None)
        print(f"solver-matched burst: {matched}")
        world.stop_all()
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "epoch_ms": EPOCH_MS,
        **latency,
        "targeted_burst": targeted,
        "solver_matched_burst": matched,
        "targets": {"offer_to_deal_p50_ms": OFFER_TO_DEAL_TARGET_MS,
                    "submit_to_result_p50_ms": SUBMIT_TO_RESULT_TARGET_MS},
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    for name, figure, target in (
        ("offer -> deal p50", latency["offer_to_deal_ms"]["p50"], OFFER_TO_DEAL_TARGET_MS),
        ("submit -> result p50", latency["submit_to_result_ms"]["p50"],
         SUBMIT_TO_RESULT_TARGET_MS),
    ):
        verdict = "met" if figure <= target else "MISSED"
        print(f"{name}: {figure} ms (target <= {target} ms): {verdict}")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
