"""Simnet figures: one scenario end to end, its wall time and headline figures.

    python benchmarks/simnet_bench.py [--scenario simnet/scenarios/baseline.toml] [--nodes 50]
    python benchmarks/simnet_bench.py --metrics-cost [--nodes 20] [--jobs 60]

(Not `simnet.py`: run as a script, that name would shadow the `simnet` package.)
Runs the scenario exactly as `lilypad-simnet up` does (the full report and plots go to --out, a
temp dir by default) and writes the headline figures to benchmarks/results/simnet-<name>.json.
Target: the 50-node baseline with >= 200 jobs in under 10 minutes.

`--metrics-cost` runs the scenario four times in one invocation, in the order off, on, on, off
(so a machine whose load drifts during the benchmark biases neither side): "on" runs have every
node serve /metrics and the simnet scrape each one every `metrics.interval_s` as Prometheus
would; "off" runs start no listener. It compares the nodes' total CPU seconds per job and
writes benchmarks/results/simnet-metrics-cost.json. Target: on costs under 3 % more than off.
On a shared machine whose load swings, whole runs differ by more than 3 % on their own, so the
benchmark also measures the cost of one scrape directly: on a small market (a provider-solver,
a client, one settled job), each node's CPU seconds over a window of back-to-back scrapes minus
an equal window without, divided by the scrapes. That cost times the scrapes of a run, over the
run's node CPU, is the overhead without the run-to-run noise.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import psutil
from rich.console import Console

from simnet import Scenario, load_scenario, run_scenario

RESULTS = Path(__file__).parent / "results"
BASELINE = Path(__file__).parents[1] / "simnet" / "scenarios" / "baseline.toml"
WALL_TARGET_S = 600


METRICS_COST_TARGET = 0.03


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenario", type=Path, default=BASELINE)
    parser.add_argument("--nodes", type=int)
    parser.add_argument("--jobs", type=int, help="override the scenario's workload.jobs")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--metrics-cost", action="store_true",
                        help="compare node CPU with metrics scraped and with them off")
    parser.add_argument("--fork", action=argparse.BooleanOptionalAction, default=True,
                        help="fork the nodes from one zygote, as the simnet does (--no-fork: "
                             "each its own `python -m` process)")
    args = parser.parse_args()
    scenario = load_scenario(args.scenario).with_nodes(args.nodes).with_workload(jobs=args.jobs)
    if args.metrics_cost:
        metrics_cost(scenario, args.out)
        return
    out = args.out or Path(tempfile.mkdtemp(prefix=f"simnet-bench-{scenario.name}-"))
    load_before = os.getloadavg()
    report = run_scenario(scenario, out, Console(), forked=args.fork).as_json()
    figures = {
        "forked": args.fork,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "scenario": scenario.name, "nodes": report["node_count"], "roles": report["roles"],
        "jobs": report["jobs"], "wall_s": report["wall_s"], "startup_s": report["startup_s"],
        "workload_s": report["workload_s"], "posted_per_s": report["posted_per_s"],
        "wall_target_s": WALL_TARGET_S, "wall_target_met": report["wall_s"] < WALL_TARGET_S,
        "deals": report["deals"], "latencies": report["latencies"]["summary"],
        "gas_per_deal_mean": report["gas"]["mean"],
        "gossip_offer_coverage": report["gossip"]["provider_offer_coverage_mean"],
        "cpu_s_total": round(sum(n["cpu_s"] for n in report["nodes"].values()), 1),
        "rss_max_mb_per_node": max(n["rss_max_mb"] for n in report["nodes"].values()),
        "rss_max_mb_sum": round(sum(n["rss_max_mb"] for n in report["nodes"].values())),
        "pss_max_mb_per_node": max(n["pss_max_mb"] for n in report["nodes"].values()),
        "pss_max_mb_sum": round(sum(n["pss_max_mb"] for n in report["nodes"].values())),
        "memory": report["memory"],
        "invariants": {c["name"]: c["ok"] for c in report["invariants"]},
        "passed": report["passed"], "report": str(out / "report.json"),
    }
    path = RESULTS / f"simnet-{scenario.name}.json"
    path.write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
    print(f"written to {path}")


def metrics_cost(scenario: Scenario, out: Path | None) -> None:
    out = out or Path(tempfile.mkdtemp(prefix=f"simnet-metrics-cost-{scenario.name}-"))
    runs = []
    for index, scrape in enumerate((False, True, True, False)):
        load_before = os.getloadavg()
        report = run_scenario(scenario.with_scraping(scrape), out / f"run-{index}",
                              Console()).as_json()
        cpu_s = sum(n["cpu_s"] for n in report["nodes"].values())
        runs.append({
            "metrics": scrape, "passed": report["passed"], "jobs": report["jobs"],
            "settled": report["deals"]["by_final_state"].get("settled", 0),
            "node_cpu_s": round(cpu_s, 1), "cpu_s_per_job": round(cpu_s / report["jobs"], 3),
            "scrapes": sum((n.get("metrics") or {}).get("scrapes", 0)
                           for n in report["nodes"].values()),
            "workload_s": report["workload_s"],
            "load_average_before": load_before, "load_average_after": os.getloadavg(),
        })
        print(json.dumps(runs[-1]))

    def mean_per_job(scrape: bool) -> float:
        chosen = [r["cpu_s_per_job"] for r in runs if r["metrics"] is scrape]
        return sum(chosen) / len(chosen)

    on, off = mean_per_job(True), mean_per_job(False)
    per_scrape = scrape_cost_s()
    on_runs = [r for r in runs if r["metrics"]]
    derived = [per_scrape["mean_cpu_s"] * r["scrapes"] / r["node_cpu_s"] for r in on_runs]
    figures = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "scenario": scenario.name,
        "nodes": scenario.nodes, "jobs": scenario.workload.jobs,
        "scrape_interval_s": scenario.metrics.interval_s, "order": "off, on, on, off",
        "runs": runs, "cpu_s_per_job_off": round(off, 3), "cpu_s_per_job_on": round(on, 3),
        "extra_cpu_between_runs": round(on / off - 1, 4),
        "cpu_s_per_scrape": per_scrape,
        "extra_cpu_from_scrape_cost": round(max(derived), 5),
        "target": METRICS_COST_TARGET,
        "target_met": max(derived) < METRICS_COST_TARGET,
    }
    path = RESULTS / "simnet-metrics-cost.json"
    path.write_text(json.dumps(figures, indent=2))
    print(json.dumps({k: v for k, v in figures.items() if k != "runs"}, indent=2))
    print(f"written to {path}")


SCRAPES_PER_WINDOW = 200


def scrape_cost_s() -> dict[str, float]:
    """CPU seconds one /metrics scrape costs each node of a small market (see the docstring)."""
    from lilypad_p2p.localnet import market_world
    from simnet._scrape import free_loopback_port

    costs: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="scrape-cost-") as base, \
            market_world(Path(base)) as world:
        ports = {name: free_loopback_port() for name in ("provider", "client")}
        provider = world.start("provider", roles=["provider", "solver"],
                               config_lines=f'metrics_listen = "127.0.0.1:{ports["provider"]}"\n')
        client = world.start("client", roles=["client"], bootstrap=[provider.dial_addr],
                             config_lines=f'metrics_listen = "127.0.0.1:{ports["client"]}"\n')
        world.wait_until_known(client, [provider])
        key = client.call("submit", {"module": "hash", "params": {"text": "cost"}})["key"]
        world.wait_for_phase(client, key, {"settled"}, timeout_s=180)
        for name, node in (("provider", provider), ("client", client)):
            process = psutil.Process(node.process.pid)
            url = f"http://127.0.0.1:{ports[name]}/metrics"

            def cpu() -> float:
                times = process.cpu_times()  # noqa: B023 (used at once, in this iteration)
                return times.user + times.system

            started, before = time.monotonic(), cpu()
            for _ in range(SCRAPES_PER_WINDOW):
                with urllib.request.urlopen(url, timeout=10) as answer:
                    answer.read()
            window_s, scraping = time.monotonic() - started, cpu() - before
            before = cpu()
            time.sleep(window_s)
            idle = cpu() - before
            costs[name] = round(max(0.0, scraping - idle) / SCRAPES_PER_WINDOW, 5)
    costs["mean_cpu_s"] = round(sum(costs.values()) / len(costs), 5)
    return costs


if __name__ == "__main__":
    main()
