"""Where a simnet's CPU goes: idle cost, CPU per job by role, and by cause (py-spy).

    python benchmarks/cpu_profile.py [--scenario simnet/scenarios/baseline.toml] [--nodes 50]
                                     [--jobs 200] [--idle-s 60] [--profile-s 60]

Runs the scenario as `lilypad-simnet up` does, with two windows added:

- idle: once every node is up and aware of the others, and before the first job is posted,
  the nodes' CPU seconds over `--idle-s` (after a settling pause), in cores, total and by role,
  and py-spy on one node of each role over the same window (as below);
- profile: `--profile-delay-s` into the workload, py-spy samples one node of each role for
  `--profile-s` (`py-spy record --nonblocking --format raw`), and every sample is attributed
  to the innermost frame that belongs to a known cause (gossip, Noise, the muxer, chain RPC,
  signatures, the store, Docker, the wire codec, matching, logging, metrics; trio's scheduler
  and I/O when nothing else is on the stack), and to the trio task it ran in (the first frame
  above trio's run loop), so a periodic loop shows by name;
- with `--trace-tasks`, every node loads `benchmarks/task_trace/sitecustomize.py` (a trio
  instrument) and the idle window also reports, per role, CPU ms/s per node, trio's I/O waits,
  the tasks that ran most (steps/s and the wall ms/s of their steps), and the garbage
  collector's runs and ms/s per generation: exact counts where py-spy's samples are few.

`cpu_s_per_job_by_role` comes from the run's report (each node's CPU over the whole run,
start-up and the idle window included, divided by the jobs); `workload_cpu_s_per_job` and its
`_by_role` count only the workload (first job posted to last ended), and `workload_idle_share`
is what of it the idle rate alone would have spent. With `--trace-tasks`,
`workload_tasks_by_role` gives the workload's busiest tasks as the idle window does.
Writes benchmarks/results/cpu-profile.json. The simnet's own
`Run.drive` is wrapped to open the windows: a benchmark may reach into the simnet, the product
must not.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import threading
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console

import simnet._run as runner
from simnet import load_scenario, run_scenario

RESULTS = Path(__file__).parent / "results"
BASELINE = Path(__file__).parents[1] / "simnet" / "scenarios" / "baseline.toml"
TASK_TRACE = Path(__file__).parent / "task_trace"
SETTLE_S = 20.0
PY_SPY_RATE_HZ = 100
TOP_TASKS = 15
# How often benchmarks/task_trace writes its counts (its TRACE_EVERY_S).
TRACE_EVERY_S = 2.0
# Innermost matching frame wins; the order breaks ties within one frame.
CAUSES = (
    ("signatures", ("coincurve", "eth_keys", "eth_account", "/ecdsa")),
    ("noise (encryption)", ("security/noise", "cryptography/", "/nacl/")),
    ("muxer", ("stream_muxer",)),
    ("gossip (pubsub)", ("libp2p/pubsub", "net/_levers", "net/_gossip")),
    ("chain (web3, RPC)", ("web3/", "eth_abi", "eth_utils", "urllib3", "requests/", "/http/",
                           "lilypad_p2p/chain/")),
    ("store (sqlite)", ("lilypad_p2p/store", "sqlite3")),
    ("docker", ("docker/",)),
    ("wire codec", ("lilypad_p2p/wire", "msgpack", "multiformats")),
    ("matching", ("lilypad_p2p/market/",)),
    ("logging", ("logging/", "lilypad_p2p/logs")),
    ("metrics", ("prometheus_client", "lilypad_p2p/observe", "lilypad_p2p/tally")),
    ("other libp2p", ("libp2p/",)),
    ("our roles and node", ("lilypad_p2p/",)),
    ("trio (scheduler, I/O)", ("trio/",)),
)


def cause_of(stack: list[str]) -> str:
    for frame in reversed(stack):
        for cause, needles in CAUSES:
            if any(needle in frame for needle in needles):
                return cause
    return "other"


def node_processes() -> dict[str, tuple[str, psutil.Process]]:
    """name -> (role, process) of every node process this benchmark started."""
    found = {}
    for child in psutil.Process().children(recursive=True):
        try:
            cmdline = child.cmdline()
        except psutil.Error:
            continue
        if "--home" not in cmdline or "node" not in cmdline:
            continue
        name = Path(cmdline[cmdline.index("--home") + 1]).name
        found[name] = (name.rsplit("-", 1)[0], child)
    return found


def cpu_seconds(processes: dict[str, tuple[str, psutil.Process]]) -> dict[str, float]:
    out = {}
    for name, (_, process) in processes.items():
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        out[name] = times.user + times.system
    return out


def task_snapshots(trace_dir: Path | None) -> dict[int, dict[str, Any]]:
    """pid -> the latest counts benchmarks/task_trace wrote for that node process."""
    snapshots = {}
    for path in trace_dir.glob("*.json") if trace_dir else ():
        try:
            snapshots[int(path.stem)] = json.loads(path.read_text())
        except (ValueError, OSError):
            continue
    return snapshots


def tasks_by_role(processes: dict[str, tuple[str, psutil.Process]],
                  before: dict[int, dict[str, Any]],
                  after: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Per role, per node on average: CPU ms/s, trio I/O waits/s, and the tasks that ran most
    (steps/s and the wall ms/s their steps took), over the window between two snapshots."""
    nodes: Counter[str] = Counter()
    cpu: Counter[str] = Counter()
    waits: Counter[str] = Counter()
    steps: defaultdict[str, Counter[str]] = defaultdict(Counter)
    seconds: defaultdict[str, Counter[str]] = defaultdict(Counter)
    streams: defaultdict[str, Counter[str]] = defaultdict(Counter)
    gc_runs: defaultdict[str, Counter[int]] = defaultdict(Counter)
    gc_seconds: defaultdict[str, Counter[int]] = defaultdict(Counter)
    for role, process in processes.values():
        old, new = before.get(process.pid), after.get(process.pid)
        if old is None or new is None or new["at"] <= old["at"]:
            continue
        span = new["at"] - old["at"]
        nodes[role] += 1
        cpu[role] += (new["cpu_s"] - old["cpu_s"]) / span
        waits[role] += (new["io_waits"] - old["io_waits"]) / span
        for task, count in new["steps"].items():
            steps[role][task] += (count - old["steps"].get(task, 0)) / span
            seconds[role][task] += (new["seconds"][task] - old["seconds"].get(task, 0.0)) / span
        for key, count in new.get("streams", {}).items():
            streams[role][key] += (count - old.get("streams", {}).get(key, 0)) / span
        for generation in range(3):
            gc_runs[role][generation] += (
                new["gc_runs"][generation] - old["gc_runs"][generation]) / span
            gc_seconds[role][generation] += (
                new["gc_seconds"][generation] - old["gc_seconds"][generation]) / span
    return {role: {
        "nodes": n, "cpu_ms_per_s": round(cpu[role] / n * 1000, 2),
        "io_waits_per_s": round(waits[role] / n, 1),
        "steps_per_s": round(sum(steps[role].values()) / n, 1),
        "gc_by_generation": [{"runs_per_s": round(gc_runs[role][g] / n, 2),
                              "ms_per_s": round(gc_seconds[role][g] / n * 1000, 3)}
                             for g in range(3)],
        "top_tasks": [{"task": task, "steps_per_s": round(steps[role][task] / n, 2),
                       "step_ms_per_s": round(spent / n * 1000, 3)}
                      for task, spent in seconds[role].most_common(TOP_TASKS)],
        "streams_per_s": {key: round(rate / n, 3) for key, rate in streams[role].most_common()
                          if rate > 0},
    } for role, n in sorted(nodes.items())}


def streams_by_role(processes: dict[str, tuple[str, psutil.Process]],
                    before: dict[int, dict[str, Any]],
                    after: dict[int, dict[str, Any]]) -> dict[str, Counter[str]]:
    """Per role, the stream and RPC counts its nodes added between two snapshots."""
    added: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for role, process in processes.values():
        old, new = before.get(process.pid, {}), after.get(process.pid)
        if new is None:
            continue
        for key, count in new.get("streams", {}).items():
            added[role][key] += count - old.get("streams", {}).get(key, 0)
    return dict(added)


def idle_window(window_s: float, trace_dir: Path | None = None) -> dict[str, Any]:
    processes = node_processes()
    time.sleep(SETTLE_S)
    before = cpu_seconds(processes)
    traced_before = task_snapshots(trace_dir)
    time.sleep(window_s)
    after = cpu_seconds(processes)
    traced_after = task_snapshots(trace_dir)
    by_role: Counter[str] = Counter()
    for name, spent in after.items():
        if name in before:
            by_role[processes[name][0]] += spent - before[name]
    figures = {"window_s": window_s, "nodes": len(processes),
               "cores_total": round(sum(by_role.values()) / window_s, 4),
               "cores_by_role": {r: round(s / window_s, 4) for r, s in sorted(by_role.items())}}
    if trace_dir is not None:
        figures["tasks_by_role"] = tasks_by_role(processes, traced_before, traced_after)
    return figures


def task_of(stack: list[str]) -> str:
    """The trio task a sample belongs to: the first frame above trio's run loop."""
    for index, frame in enumerate(stack):
        if frame.startswith("unrolled_run ") and index + 1 < len(stack):
            function, _, where = stack[index + 1].partition(" (")
            module = where.split("site-packages/")[-1].split(":")[0]
            return f"{module}:{function}"
    return "trio's run loop (no task)"


def profile_window(delay_s: float, window_s: float, out: Path, result: dict[str, Any],
                   label: str = "") -> None:
    time.sleep(delay_s)
    processes = node_processes()
    chosen = {}
    for name, (role, process) in sorted(processes.items()):
        chosen.setdefault(role, (name, process))
    spies = {}
    for role, (name, process) in chosen.items():
        raw = out / f"py-spy-{label}{name}.txt"
        spies[role] = (name, raw, subprocess.Popen(
            ["py-spy", "record", "--pid", str(process.pid), "--duration", str(int(window_s)),
             "--rate", str(PY_SPY_RATE_HZ), "--nonblocking", "--format", "raw",
             "--output", str(raw)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    for role, (name, raw, spy) in spies.items():
        _, err = spy.communicate(timeout=window_s + 60)
        causes: Counter[str] = Counter()
        tasks: Counter[str] = Counter()
        if raw.exists():
            for line in raw.read_text().splitlines():
                stack, _, count = line.rpartition(" ")
                if stack and count.isdigit():
                    causes[cause_of(stack.split(";"))] += int(count)
                    tasks[task_of(stack.split(";"))] += int(count)
        total = sum(causes.values())
        result[role] = {
            "node": name, "samples": total,
            "error": err.decode(errors="replace")[-300:] if spy.returncode else None,
            "share_by_cause": {cause: round(n / total, 4)
                               for cause, n in causes.most_common()} if total else {},
            "share_by_task": {task: round(n / total, 4)
                              for task, n in tasks.most_common(TOP_TASKS)} if total else {},
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenario", type=Path, default=BASELINE)
    parser.add_argument("--nodes", type=int)
    parser.add_argument("--jobs", type=int, help="override the scenario's workload.jobs")
    parser.add_argument("--rate", type=float, help="override the scenario's jobs per second")
    parser.add_argument("--idle-s", type=float, default=60.0)
    parser.add_argument("--profile-s", type=float, default=60.0)
    parser.add_argument("--profile-delay-s", type=float, default=30.0)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--trace-tasks", action="store_true",
                        help="count every node's trio task steps (benchmarks/task_trace) and "
                             "report the idle window's busiest tasks per role")
    parser.add_argument("--fork", action=argparse.BooleanOptionalAction, default=True,
                        help="fork the nodes from one zygote, as the simnet does (--no-fork: "
                             "each its own `python -m` process); --trace-tasks implies --no-fork")
    args = parser.parse_args()
    # The instrument loads as each node interpreter's sitecustomize: a forked node has none.
    args.fork = args.fork and not args.trace_tasks
    scenario = load_scenario(args.scenario).with_nodes(args.nodes).with_workload(
        jobs=args.jobs, rate_per_s=args.rate)
    out = args.out or Path(tempfile.mkdtemp(prefix=f"cpu-profile-{scenario.name}-"))
    out.mkdir(parents=True, exist_ok=True)
    trace_dir = None
    if args.trace_tasks:
        # Node processes inherit the environment: the instrument loads as their sitecustomize.
        trace_dir = out / "tasks"
        trace_dir.mkdir(exist_ok=True)
        os.environ["TRACE_TASKS_DIR"] = str(trace_dir)
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [str(TASK_TRACE), *filter(None, [os.environ.get("PYTHONPATH")])])
    idle: dict[str, Any] = {}
    profile: dict[str, Any] = {}
    idle_profile: dict[str, Any] = {}
    workload: dict[str, float] = {}
    workload_by_role: Counter[str] = Counter()
    workload_tasks: dict[str, Any] = {}
    traffic: dict[str, Counter[str]] = {}
    drive = runner.Run.drive

    def drive_with_windows(run: runner.Run) -> float:
        idle_spy = threading.Thread(
            target=profile_window,
            args=(SETTLE_S, min(args.idle_s, args.profile_s), out, idle_profile, "idle-"))
        idle_spy.start()
        idle.update(idle_window(args.idle_s, trace_dir))
        idle_spy.join()
        spy = threading.Thread(target=profile_window,
                               args=(args.profile_delay_s, args.profile_s, out, profile))
        processes = node_processes()
        before = cpu_seconds(processes)
        traced_before = task_snapshots(trace_dir)
        started = time.monotonic()
        spy.start()
        try:
            return drive(run)
        finally:
            spy.join()
            after = cpu_seconds(processes)
            for name in after.keys() & before.keys():
                workload_by_role[processes[name][0]] += after[name] - before[name]
            if trace_dir is not None:
                time.sleep(TRACE_EVERY_S)
                traced_after = task_snapshots(trace_dir)
                traffic.update(streams_by_role(processes, traced_before, traced_after))
                workload_tasks.update(tasks_by_role(processes, traced_before, traced_after))
            workload.update(
                seconds=time.monotonic() - started,
                cpu_s=sum(after[n] - before[n] for n in after if n in before))

    runner.Run.drive = drive_with_windows  # type: ignore[method-assign]
    load_before = os.getloadavg()
    report = run_scenario(scenario, out / "run", Console(), forked=args.fork).as_json()
    jobs = report["jobs"]
    cpu_by_role: defaultdict[str, float] = defaultdict(float)
    for node in report["nodes"].values():
        cpu_by_role[node["role"]] += node["cpu_s"]
    figures = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "scenario": scenario.name, "nodes": report["node_count"], "roles": report["roles"],
        "jobs": jobs, "deals": report["deals"], "workload_s": report["workload_s"],
        "posted_per_s": report["posted_per_s"],
        "latencies": report["latencies"]["summary"], "passed": report["passed"],
        "idle": idle,
        "idle_profile_by_role": idle_profile,
        # Whole run (node start-up and the idle window included), as the simnet reports it.
        "cpu_s_per_job": round(sum(cpu_by_role.values()) / jobs, 3),
        "cpu_s_per_job_by_role": {r: round(s / jobs, 3) for r, s in sorted(cpu_by_role.items())},
        # From the first job posted to the last one ended, and what of it the idle rate explains.
        "workload_cpu_s_per_job": round(workload["cpu_s"] / jobs, 3),
        "workload_idle_share": round(idle["cores_total"] * workload["seconds"]
                                     / workload["cpu_s"], 3),
        "workload_cpu_s_per_job_by_role": {
            role: round(spent / jobs, 3) for role, spent in sorted(workload_by_role.items())},
        # With --trace-tasks: per node of each role, as for the idle window.
        "workload_tasks_by_role": workload_tasks,
        # With --trace-tasks: streams opened/accepted by protocol and pubsub RPCs received by
        # kind, per job, summed over each role's nodes, over the workload.
        "traffic_per_job_by_role": {
            role: {key: round(count / jobs, 2) for key, count in counts.most_common()}
            for role, counts in sorted(traffic.items())},
        "rss_max_mb_per_node": max(n["rss_max_mb"] for n in report["nodes"].values()),
        "pss_max_mb_per_node": max(n["pss_max_mb"] for n in report["nodes"].values()),
        "pss_max_mb_sum": round(sum(n["pss_max_mb"] for n in report["nodes"].values())),
        "memory": report["memory"],
        "forked": args.fork,
        "profile_window_s": args.profile_s, "profile_by_role": profile,
        "report": str(out / "run" / "report.json"),
    }
    path = RESULTS / "cpu-profile.json"
    path.write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
