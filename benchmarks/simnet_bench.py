"""Simnet figures (issue 8): one scenario end to end, its wall time and headline figures.

    python benchmarks/simnet_bench.py [--scenario simnet/scenarios/baseline.toml] [--nodes 50]

(Not `simnet.py`: run as a script, that name would shadow the `simnet` package.)
Runs the scenario exactly as `lilypad-simnet up` does (the full report and plots go to --out, a
temp dir by default) and writes the headline figures to benchmarks/results/simnet-<name>.json.
Target (issue 8): the 50-node baseline with >= 200 jobs in under 10 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from simnet import load_scenario, run_scenario

RESULTS = Path(__file__).parent / "results"
BASELINE = Path(__file__).parents[1] / "simnet" / "scenarios" / "baseline.toml"
WALL_TARGET_S = 600


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenario", type=Path, default=BASELINE)
    parser.add_argument("--nodes", type=int)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    scenario = load_scenario(args.scenario).with_nodes(args.nodes)
    out = args.out or Path(tempfile.mkdtemp(prefix=f"simnet-bench-{scenario.name}-"))
    load_before = os.getloadavg()
    report = run_scenario(scenario, out, Console())
    figures = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "scenario": scenario.name, "nodes": report["node_count"], "roles": report["roles"],
        "jobs": report["jobs"], "wall_s": report["wall_s"], "startup_s": report["startup_s"],
        "workload_s": report["workload_s"],
        "wall_target_s": WALL_TARGET_S, "wall_target_met": report["wall_s"] < WALL_TARGET_S,
        "deals": report["deals"], "latencies": report["latencies"]["summary"],
        "gas_per_deal_mean": report["gas"]["mean"],
        "gossip_offer_coverage": report["gossip"]["provider_offer_coverage_mean"],
        "cpu_s_total": round(sum(n["cpu_s"] for n in report["nodes"].values()), 1),
        "rss_max_mb_per_node": max(n["rss_max_mb"] for n in report["nodes"].values()),
        "rss_max_mb_sum": round(sum(n["rss_max_mb"] for n in report["nodes"].values())),
        "invariants": {c["name"]: c["ok"] for c in report["invariants"]},
        "passed": report["passed"], "report": str(out / "report.json"),
    }
    path = RESULTS / f"simnet-{scenario.name}.json"
    path.write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
