"""Gossip benchmark: N real GossipNet nodes in P OS processes on loopback, a steady offer rate.

    python benchmarks/gossip.py --nodes 10 --procs 2 --rate 2 --messages 200
    python benchmarks/gossip.py --nodes 50 --procs 2 --rate 2 --messages 200
    python benchmarks/gossip.py --nodes 20 --muxer both --rounds 2 --messages 100

`--muxer both` compares muxers in one invocation: the arms (`--arms`, default mplex and yamux)
run one after the other, alternating,
`--rounds` times, so machine-load drift hits every arm alike. It reports each arm's median CPU
per delivery and its ratio to the first arm's, and records every run and the summary.

Each process (benchmarks/gossip_worker.py) hosts N/P nodes; node 0 is everyone's bootstrap and
the rest discover each other by peer exchange. Message k is a signed ResourceOffer published by
node k mod N at start + k/rate. Prints the delivery ratio (deliveries to every node but the
publisher), p50/p90/p99 propagation latency (receive wall clock - envelope published_at),
CPU ms per delivered message (all processes' CPU over the run window / deliveries) and RSS per
node, and merges the figures into benchmarks/results/gossip.json under a label.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "gossip.json"
# Workers must report within these (they are generous: 50 nodes on 2 busy cores dial slowly).
LISTEN_TIMEOUT_S = 60.0
MESH_TIMEOUT_S = 180.0
RESULT_GRACE_S = 120.0
START_DELAY_S = 2.0


def _read_event(proc: subprocess.Popen[str], event: str, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    assert proc.stdout is not None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"worker {proc.pid} did not report {event!r} in {timeout_s} s")
        ready, _, _ = select.select([proc.stdout], [], [], remaining)
        if not ready:
            continue
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {proc.pid} exited (code {proc.wait()}) before {event!r}")
        record = json.loads(line)
        if record.get("event") == event:
            return record


def _percentile(values: list[int], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return float(ordered[index])


def run(args: argparse.Namespace, log_dir: Path) -> dict:
    per_proc = math.ceil(args.nodes / args.procs)
    chunks = [
        (offset, min(per_proc, args.nodes - offset)) for offset in range(0, args.nodes, per_proc)
    ]
    load_before = os.getloadavg()
    procs: list[subprocess.Popen[str]] = []

    def spawn(offset: int, count: int, bootstrap: str) -> subprocess.Popen[str]:
        command = [
            sys.executable,
            str(HERE / "gossip_worker.py"),
            f"--nodes-here={count}",
            f"--node-offset={offset}",
            f"--total-nodes={args.nodes}",
            f"--muxer={args.muxer}",
            f"--messages={args.messages}",
            f"--rate={args.rate}",
            f"--padding-modules={args.padding_modules}",
            f"--degree={args.degree}",
        ]
        if bootstrap:
            command.append(f"--bootstrap={bootstrap}")
        log = open(log_dir / f"worker-{offset}.log", "w")  # noqa: SIM115 - lives with the process
        proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True
        )
        procs.append(proc)
        return proc

    try:
        first = spawn(*chunks[0], "")
        bootstrap = _read_event(first, "listening", LISTEN_TIMEOUT_S)["addr"]
        for offset, count in chunks[1:]:
            spawn(offset, count, bootstrap)
        mesh_seconds = [_read_event(p, "meshed", MESH_TIMEOUT_S)["seconds"] for p in procs]
        start_wall = time.time() + START_DELAY_S
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(f"start {start_wall}\n")
            proc.stdin.flush()
        run_s = args.messages / args.rate
        results = [_read_event(p, "result", run_s + RESULT_GRACE_S) for p in procs]
        load_after = os.getloadavg()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()

    delivered: set[tuple[int, int]] = set()
    latencies: list[int] = []
    node = 0
    for result in results:
        for node_received in result["received"]:
            for seq, latency_ms in node_received:
                if (seq, node) not in delivered:
                    delivered.add((seq, node))
                    latencies.append(latency_ms)
            node += 1
    expected = args.messages * (args.nodes - 1)
    publisher = {seq: seq % args.nodes for seq in range(args.messages)}
    missing_by_node = [0] * args.nodes
    receivers_by_seq = [0] * args.messages
    for seq, _receiver in delivered:
        receivers_by_seq[seq] += 1
    for seq in range(args.messages):
        for receiver in range(args.nodes):
            if receiver != publisher[seq] and (seq, receiver) not in delivered:
                missing_by_node[receiver] += 1
    dropped: dict[str, int] = {}
    reports: dict[str, int] = {}
    for result in results:
        for counts, target in ((result["dropped"], dropped), (result["reports"], reports)):
            for node_counts in counts:
                for key, value in node_counts.items():
                    target[key] = target.get(key, 0) + value
    cpu_s = sum(r["cpu_s"] for r in results)
    rss = sum(r["rss_bytes"] for r in results)
    return {
        "nodes": args.nodes,
        "procs": len(procs),
        "nodes_per_proc": per_proc,
        "muxer": args.muxer,
        "rate_msgs_per_s": args.rate,
        "messages": args.messages,
        "padding_modules": args.padding_modules,
        "mesh_degree": args.degree,
        "delivery_ratio": len(delivered) / expected if expected else 1.0,
        "deliveries": len(delivered),
        "expected_deliveries": expected,
        "latency_ms": {
            "p50": _percentile(latencies, 0.50) if latencies else None,
            "p90": _percentile(latencies, 0.90) if latencies else None,
            "p99": _percentile(latencies, 0.99) if latencies else None,
            "max": max(latencies) if latencies else None,
            "mean": round(statistics.fmean(latencies), 1) if latencies else None,
        },
        "cpu_ms_per_delivery": round(cpu_s * 1000 / len(delivered), 2) if delivered else None,
        "cpu_s_total": round(cpu_s, 2),
        "rss_mb_per_node": round(rss / args.nodes / 2**20, 1),
        "rss_mb_per_proc": [round(r["rss_bytes"] / 2**20, 1) for r in results],
        "mesh_formation_s": mesh_seconds,
        "outbound_queue_drops": sum(r["outbound_queue_drops"] for r in results),
        "validator_drops": dropped,
        "peer_reports": reports,
        "graylisted_ignored": sum(r["graylisted_ignored"] for r in results),
        "nodes_missing_any": sum(1 for m in missing_by_node if m),
        "missing_by_node": missing_by_node,
        "messages_not_everywhere": sum(1 for n in receivers_by_seq if n < args.nodes - 1),
        "messages_reaching_nobody": sum(1 for n in receivers_by_seq if n == 0),
        "event_queue_drops": sum(r["event_queue_drops"] for r in results),
        "connections_per_node": [p for r in results for p in r["peers"]],
        "mesh_size_per_node": [m for r in results for m in r["mesh_sizes"]],
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _summary_line(label: str, figures: dict) -> str:
    latency = figures["latency_ms"]
    return (
        f"{label}: delivered {figures['delivery_ratio']:.2%} "
        f"({figures['deliveries']}/{figures['expected_deliveries']}), "
        f"latency p50/p90/p99 {latency['p50']}/{latency['p90']}/{latency['p99']} ms, "
        f"CPU {figures['cpu_ms_per_delivery']} ms per delivery, "
        f"RSS {figures['rss_mb_per_node']} MB per node, "
        f"queue drops {figures['outbound_queue_drops']}, load {figures['load_average_before']}"
    )


def _run_logged(args: argparse.Namespace, log_dir: Path) -> dict:
    try:
        return run(args, log_dir)
    except Exception:
        for log in sorted(log_dir.glob("*.log")):
            print(f"--- {log.name}\n{log.read_text()[-3000:]}", file=sys.stderr)
        raise


def compare_muxers(args: argparse.Namespace, log_dir: Path) -> dict:
    """Every arm `args.rounds` times, alternating; per-arm medians and ratios to the first arm."""
    arms = args.arms.split(",")
    runs: list[dict] = []
    for round_index in range(args.rounds):
        for arm in arms:
            arm_args = copy.copy(args)
            arm_args.muxer = arm
            figures = _run_logged(arm_args, log_dir)
            figures["round"] = round_index
            print(_summary_line(f"round {round_index} {arm}", figures), flush=True)
            runs.append(figures)
    medians = {
        arm: statistics.median(r["cpu_ms_per_delivery"] for r in runs if r["muxer"] == arm)
        for arm in arms
    }
    baseline = medians[arms[0]]
    return {
        "arms": arms,
        "rounds": args.rounds,
        "nodes": args.nodes,
        "procs": args.procs,
        "rate_msgs_per_s": args.rate,
        "messages": args.messages,
        "median_cpu_ms_per_delivery": medians,
        "cpu_ratio_to_first_arm": {arm: round(m / baseline, 3) for arm, m in medians.items()},
        "min_delivery_ratio": {
            arm: min(r["delivery_ratio"] for r in runs if r["muxer"] == arm) for arm in arms
        },
        "runs": runs,
        "load_average_before": runs[0]["load_average_before"],
        "load_average_after": runs[-1]["load_average_after"],
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--rate", type=float, default=2.0, help="offers per second, network-wide")
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument(
        "--muxer", choices=["yamux", "mplex", "both"], default="yamux"
    )
    parser.add_argument("--arms", default="mplex,yamux", help="muxers compared by --muxer both")
    parser.add_argument("--rounds", type=int, default=2, help="alternations for --muxer both")
    parser.add_argument("--padding-modules", type=int, default=0, help="grow each offer")
    parser.add_argument("--degree", default="4,3,6", help="GossipSub D,D_low,D_high")
    parser.add_argument("--label", default="", help="key in results/gossip.json")
    parser.add_argument("--log-dir", default="", help="keep worker logs here (default: discard)")
    args = parser.parse_args()
    label = args.label or (
        f"n{args.nodes}_p{args.procs}_{args.muxer}_r{args.rate:g}_d{args.degree.replace(',', '-')}"
    )
    with tempfile.TemporaryDirectory(prefix="gossip-bench-") as temp_dir:
        log_dir = Path(args.log_dir or temp_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        if args.muxer == "both":
            label = args.label or f"n{args.nodes}_p{args.procs}_muxers_r{args.rate:g}"
            figures = compare_muxers(args, log_dir)
        else:
            figures = _run_logged(args, log_dir)
    figures["command"] = "python benchmarks/gossip.py " + " ".join(sys.argv[1:])
    if args.muxer == "both":
        print(
            f"{label}: median CPU ms per delivery {figures['median_cpu_ms_per_delivery']}, "
            f"ratio {figures['cpu_ratio_to_first_arm']}, "
            f"min delivery {figures['min_delivery_ratio']}, load "
            f"{figures['load_average_before']} -> {figures['load_average_after']}"
        )
    else:
        print(_summary_line(label, figures))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    existing[label] = figures
    RESULTS.write_text(json.dumps(existing, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
