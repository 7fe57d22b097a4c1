"""Gossip benchmark: N real GossipNet nodes in P OS processes on loopback, a steady offer rate.

    python benchmarks/gossip.py --nodes 10 --procs 2 --rate 2 --messages 200
    python benchmarks/gossip.py --nodes 50 --procs 2 --rate 2 --messages 200
    python benchmarks/gossip.py --nodes 20 --muxer both --rounds 2 --messages 100
    python benchmarks/gossip.py --nodes 10 --procs 2 --rate 2 --messages 100 --compare stock

`--muxer both` compares muxers in one invocation: the arms (`--arms`, default mplex and yamux)
run one after the other, alternating,
`--rounds` times, so machine-load drift hits every arm alike. It reports each arm's median CPU
per delivery and its ratio to the first arm's, and records every run and the summary.

`--compare stock` does the same with two arms: ours (GossipNet, `--muxer`, `--degree`) and
stock py-libp2p (`--arm stock` runs that arm alone). It reports each arm's median delivery
ratio, p50/p99 latency, CPU ms per delivery and RSS per node, and ours/stock for each.

Each process (benchmarks/gossip_worker.py) hosts N/P nodes; node 0 is everyone's bootstrap and
the rest discover each other by peer exchange. Message k is a signed ResourceOffer published by
node k mod N at start + k/rate. Prints the delivery ratio (deliveries to every node but the
publisher), p50/p90/p99 propagation latency (receive wall clock - envelope published_at),
CPU ms per delivered message (all processes' CPU over the run window / deliveries) and RSS per
node, and merges the figures into benchmarks/results/gossip.json under a label.

The stock arm (benchmarks/gossip_stock_worker.py) is the same N nodes in P processes, the same
offer bytes at the same times, on plain `libp2p.new_host()` hosts (the library's own choices:
Ed25519 key, Noise first, Yamux first) running `GossipSub` and `Pubsub` with their defaults:
heartbeat 120 s (`--stock-heartbeat`), meshsub 1.2/1.1/1.0, spam cap 10 messages/s per topic per
forwarder, 32-slot outbound queues, signed messages, peer+seqno message IDs, adaptive gossip and
eclipse protection on. GossipSub's constructor has no default degree: the spec's 6/4/12
(`--stock-degree`). py-libp2p has no discovery of its own, so the driver gives each node its ring
successor and `--stock-links` (3) random others to dial, and others dial it about as often (5-9
connections, mean 6.6 at 10 nodes; our discovery keeps about 8). The 120 s heartbeat does not stop
the mesh forming: py-libp2p GRAFTs a peer as soon as its subscription arrives while the mesh is
under D_low, so meshes fill to about D_low in seconds; what the long heartbeat loses is mesh
repair, D_low -> D growth and IHAVE gossip between heartbeats (none of which a loss-free run
needs). With `--stock-heartbeat 1` the heartbeat fills meshes to D = 6 and peers GRAFT back, so
each node meshes with every connection it has. Figures: RESULTS.md "Gossip: ours beside stock
GossipSub".
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import random
import select
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "gossip.json"
# Workers must report within these (they are generous: 50 nodes on 2 busy cores dial slowly).
LISTEN_TIMEOUT_S = 60.0
MESH_TIMEOUT_S = 180.0
RESULT_GRACE_S = 120.0
START_DELAY_S = 2.0
# py-libp2p's GossipSub heartbeat; the stock arm meshes without it (see the docstring).
STOCK_HEARTBEAT_S = 120.0


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


def _stock_links(nodes: int, links: int, seed: int) -> list[list[int]]:
    """Whom each stock node dials: its ring successor (so the graph is connected) and `links`
    other nodes drawn at random; others dial it about as often."""
    rng = random.Random(seed)
    plan: list[list[int]] = []
    for node in range(nodes):
        targets = {(node + 1) % nodes} if nodes > 1 else set()
        others = [n for n in range(nodes) if n != node and n not in targets]
        targets.update(rng.sample(others, min(links, len(others))))
        plan.append(sorted(targets))
    return plan


def run(args: argparse.Namespace, log_dir: Path) -> dict:
    per_proc = math.ceil(args.nodes / args.procs)
    chunks = [
        (offset, min(per_proc, args.nodes - offset)) for offset in range(0, args.nodes, per_proc)
    ]
    load_before = os.getloadavg()
    procs: list[subprocess.Popen[str]] = []
    stock = args.arm == "stock"

    def spawn(offset: int, count: int, bootstrap: str) -> subprocess.Popen[str]:
        common = [
            f"--nodes-here={count}",
            f"--node-offset={offset}",
            f"--total-nodes={args.nodes}",
            f"--messages={args.messages}",
            f"--rate={args.rate}",
            f"--padding-modules={args.padding_modules}",
        ]
        if stock:
            script = "gossip_stock_worker.py"
            arm = [f"--degree={args.stock_degree}", f"--heartbeat={args.stock_heartbeat}"]
        else:
            script = "gossip_worker.py"
            arm = [f"--muxer={args.muxer}", f"--degree={args.degree}"]
            if bootstrap:
                arm.append(f"--bootstrap={bootstrap}")
        log = open(log_dir / f"{args.arm}-worker-{offset}.log", "w")  # noqa: SIM115 - lives with the process
        proc = subprocess.Popen(
            [sys.executable, str(HERE / script), *common, *arm],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        procs.append(proc)
        return proc

    def send(proc: subprocess.Popen[str], line: str) -> None:
        assert proc.stdin is not None
        proc.stdin.write(line + "\n")
        proc.stdin.flush()

    try:
        if stock:
            for offset, count in chunks:
                spawn(offset, count, "")
            listening = [_read_event(p, "listening", LISTEN_TIMEOUT_S) for p in procs]
            addrs = [addr for event in listening for addr in event["addrs"]]
            plan = _stock_links(args.nodes, args.stock_links, args.seed)
            for proc, (offset, count) in zip(procs, chunks, strict=True):
                dials = [[addrs[t] for t in plan[n]] for n in range(offset, offset + count)]
                send(proc, "peers " + json.dumps(dials))
        else:
            first = spawn(*chunks[0], "")
            bootstrap = _read_event(first, "listening", LISTEN_TIMEOUT_S)["addr"]
            for offset, count in chunks[1:]:
                spawn(offset, count, bootstrap)
        meshed = [_read_event(p, "meshed", MESH_TIMEOUT_S) for p in procs]
        mesh_seconds = [m["seconds"] for m in meshed]
        start_wall = time.time() + START_DELAY_S
        for proc in procs:
            send(proc, f"start {start_wall}")
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
    arm_settings = (
        {
            "muxer": "library default (yamux, then mplex)",
            "security": "library default (noise first)",
            "mesh_degree": args.stock_degree,
            "heartbeat_s": args.stock_heartbeat,
            "links_per_node": args.stock_links,
            "link_seed": args.seed,
        }
        if stock
        else {"muxer": args.muxer, "mesh_degree": args.degree}
    )
    return {
        "arm": args.arm,
        **arm_settings,
        "nodes": args.nodes,
        "procs": len(procs),
        "nodes_per_proc": per_proc,
        "rate_msgs_per_s": args.rate,
        "messages": args.messages,
        "padding_modules": args.padding_modules,
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
        "mesh_size_at_start": [size for m in meshed for size in m["mesh_sizes"]],
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


def _median_of(runs: list[dict], name: str, pick: Callable[[dict], float | None]) -> float | None:
    values = [v for r in runs if r["arm_name"] == name and (v := pick(r)) is not None]
    return round(statistics.median(values), 3) if values else None


# Figures each comparison reports per arm (the median over its rounds).
_COMPARED: dict[str, Callable[[dict], float | None]] = {
    "delivery_ratio": lambda r: r["delivery_ratio"],
    "latency_p50_ms": lambda r: r["latency_ms"]["p50"],
    "latency_p99_ms": lambda r: r["latency_ms"]["p99"],
    "cpu_ms_per_delivery": lambda r: r["cpu_ms_per_delivery"],
    "rss_mb_per_node": lambda r: r["rss_mb_per_node"],
}


def compare(args: argparse.Namespace, log_dir: Path, arms: dict[str, dict]) -> dict:
    """Every arm (name -> the arguments it overrides) `args.rounds` times, alternating, so
    machine-load drift hits every arm alike; per-arm medians and ratios to the first arm."""
    runs: list[dict] = []
    for round_index in range(args.rounds):
        for name, overrides in arms.items():
            arm_args = copy.copy(args)
            vars(arm_args).update(overrides)
            figures = _run_logged(arm_args, log_dir)
            figures["round"] = round_index
            figures["arm_name"] = name
            print(_summary_line(f"round {round_index} {name}", figures), flush=True)
            runs.append(figures)
    names = list(arms)
    medians = {
        figure: {name: _median_of(runs, name, pick) for name in names}
        for figure, pick in _COMPARED.items()
    }
    cpu = medians["cpu_ms_per_delivery"]
    first = cpu[names[0]]
    return {
        "arms": names,
        "rounds": args.rounds,
        "nodes": args.nodes,
        "procs": args.procs,
        "rate_msgs_per_s": args.rate,
        "messages": args.messages,
        "medians": medians,
        "median_cpu_ms_per_delivery": cpu,
        "cpu_ratio_to_first_arm": {
            name: round(m / first, 3) if m is not None and first else None
            for name, m in cpu.items()
        },
        "min_delivery_ratio": {
            name: min(r["delivery_ratio"] for r in runs if r["arm_name"] == name) for name in names
        },
        "runs": runs,
        "load_average_before": runs[0]["load_average_before"],
        "load_average_after": runs[-1]["load_average_after"],
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _ratios(medians: dict[str, dict], numerator: str, denominator: str) -> dict:
    ratios = {}
    for figure, by_arm in medians.items():
        top, bottom = by_arm[numerator], by_arm[denominator]
        ratios[figure] = round(top / bottom, 3) if top is not None and bottom else None
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--rate", type=float, default=2.0, help="offers per second, network-wide")
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--muxer", choices=["yamux", "mplex", "both"], default="yamux")
    parser.add_argument("--arms", default="mplex,yamux", help="muxers compared by --muxer both")
    parser.add_argument(
        "--rounds", type=int, default=2, help="alternations for --muxer both / --compare stock"
    )
    parser.add_argument("--padding-modules", type=int, default=0, help="grow each offer")
    parser.add_argument("--degree", default="4,3,6", help="GossipSub D,D_low,D_high")
    parser.add_argument(
        "--arm", choices=["ours", "stock"], default="ours", help="our GossipNet or stock py-libp2p"
    )
    parser.add_argument(
        "--compare", choices=["stock"], help="run ours and stock alternately, --rounds times"
    )
    parser.add_argument(
        "--stock-degree", default="6,4,12", help="stock D,D_low,D_high (no library default)"
    )
    parser.add_argument(
        "--stock-heartbeat",
        type=float,
        default=STOCK_HEARTBEAT_S,
        help="stock heartbeat seconds (library default 120)",
    )
    parser.add_argument(
        "--stock-links", type=int, default=3, help="random peers each stock node dials"
    )
    parser.add_argument("--seed", type=int, default=1, help="for the stock links")
    parser.add_argument("--label", default="", help="key in results/gossip.json")
    parser.add_argument("--log-dir", default="", help="keep worker logs here (default: discard)")
    args = parser.parse_args()
    if args.compare and args.muxer == "both":
        parser.error("--compare stock runs our arm with one muxer: drop --muxer both")
    rate = f"r{args.rate:g}"
    if args.compare:
        label = f"n{args.nodes}_p{args.procs}_vs_stock_{rate}_hb{args.stock_heartbeat:g}"
    elif args.muxer == "both":
        label = f"n{args.nodes}_p{args.procs}_muxers_{rate}"
    elif args.arm == "stock":
        label = f"n{args.nodes}_p{args.procs}_stock_{rate}_hb{args.stock_heartbeat:g}"
    else:
        label = f"n{args.nodes}_p{args.procs}_{args.muxer}_{rate}_d{args.degree.replace(',', '-')}"
    label = args.label or label
    with tempfile.TemporaryDirectory(prefix="gossip-bench-") as temp_dir:
        log_dir = Path(args.log_dir or temp_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        if args.compare:
            figures = compare(args, log_dir, {"ours": {"arm": "ours"}, "stock": {"arm": "stock"}})
            figures["ours_over_stock"] = _ratios(figures["medians"], "ours", "stock")
        elif args.muxer == "both":
            muxers = args.arms.split(",")
            figures = compare(args, log_dir, {m: {"muxer": m} for m in muxers})
        else:
            figures = _run_logged(args, log_dir)
    figures["command"] = "python benchmarks/gossip.py " + " ".join(sys.argv[1:])
    if args.compare:
        print(
            f"{label}: medians {figures['medians']}, ours/stock {figures['ours_over_stock']}, "
            f"load {figures['load_average_before']} -> {figures['load_average_after']}"
        )
    elif args.muxer == "both":
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
