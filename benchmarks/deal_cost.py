"""CPU per deal, by role, in the smallest real market: one client, one solver, one provider.

    python benchmarks/deal_cost.py [--jobs 30] [--idle-s 20] [--label NAME] [--profile DIR]

Real `lilypad-p2p node` processes on anvil (`localnet.market_world`), the `hash` module in
Docker. After one warm-up job (image present, connections up), the nodes' CPU is read over
`--idle-s` with no job, then over `--jobs` jobs posted one after another (each waits for the
previous one to end). Reported per job and role, anvil included: the CPU over the jobs, and
the same less what the idle rate would have spent in that time (the work the deals
themselves cost). With `--profile DIR`, py-spy records each node over the jobs
(`DIR/py-spy-<role>.txt`, raw format). A 50-node network adds gossip, more idle nodes and
contention to these figures (`cpu_profile.py`); this one isolates what a deal costs each party.

The figures are merged into benchmarks/results/deal-cost.json under `--label` (default: the
checkout's short commit), so runs of two checkouts in turn sit side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from lilypad_p2p.localnet import market_world

RESULTS = Path(__file__).parent / "results" / "deal-cost.json"
FINAL = {"settled", "rejected", "cancelled", "timed_out"}
JOB_TIMEOUT_S = 120.0
SETTLE_PAUSE_S = 5.0
PY_SPY_RATE_HZ = 200


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def _label() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, cwd=Path(__file__).parent, check=False).stdout.strip()


def measure(jobs: int, idle_s: float, profile: Path | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="lilypad-deal-cost-") as tmp, market_world(
        Path(tmp)
    ) as world:
        provider = world.start("provider", roles=["provider"])
        solver = world.start("solver", roles=["solver"], bootstrap=[provider.dial_addr])
        client = world.start("client", roles=["client"], bootstrap=[provider.dial_addr])
        world.wait_until_known(client, [provider])
        nodes = {"client": client, "solver": solver, "provider": provider}
        processes = {role: psutil.Process(node.process.pid) for role, node in nodes.items()}
        anvil = [p for p in psutil.Process().children(recursive=True) if "anvil" in p.name()]
        if anvil:
            processes["anvil"] = anvil[0]

        def run_job(text: str) -> None:
            key = client.call("submit", {"module": "hash", "params": {"text": text}})["key"]
            deal = world.wait_for_phase(client, key, FINAL, timeout_s=JOB_TIMEOUT_S)
            if deal["phase"] != "settled":
                raise SystemExit(f"job ended {deal['phase']}: {deal['error']}")

        run_job("warm-up")
        time.sleep(SETTLE_PAUSE_S)
        before = {role: _cpu_s(p) for role, p in processes.items()}
        started = time.monotonic()
        time.sleep(idle_s)
        idle_window = time.monotonic() - started
        idle = {role: (_cpu_s(p) - before[role]) / idle_window for role, p in processes.items()}
        spies = []
        if profile is not None:
            profile.mkdir(parents=True, exist_ok=True)
            spies = [subprocess.Popen(
                ["py-spy", "record", "--pid", str(nodes[role].process.pid), "--rate",
                 str(PY_SPY_RATE_HZ), "--nonblocking", "--format", "raw",
                 "-o", str(profile / f"py-spy-{role}.txt")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for role in nodes]
            time.sleep(1)  # py-spy attaches
        before = {role: _cpu_s(p) for role, p in processes.items()}
        started = time.monotonic()
        for i in range(jobs):
            run_job(f"deal cost {i}")
        wall_s = time.monotonic() - started
        spent = {role: _cpu_s(p) - before[role] for role, p in processes.items()}
        for spy in spies:
            spy.send_signal(2)
            spy.wait(timeout=30)
        world.stop_all()
    return {
        "jobs": jobs,
        "wall_s": round(wall_s, 1),
        "idle_cpu_ms_per_s": {role: round(1000 * rate, 2) for role, rate in idle.items()},
        "cpu_ms_per_job": {role: round(1000 * s / jobs, 1) for role, s in spent.items()},
        "cpu_ms_per_job_less_idle": {
            role: round(1000 * (s - idle[role] * wall_s) / jobs, 1) for role, s in spent.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--idle-s", type=float, default=20.0)
    parser.add_argument("--label", default=None, help="key in deal-cost.json (default: commit)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="record py-spy of each node over the jobs into this folder")
    args = parser.parse_args()
    load_before = os.getloadavg()
    figures = measure(args.jobs, args.idle_s, args.profile)
    figures = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "load_before": [round(x, 2) for x in load_before],
               "load_after": [round(x, 2) for x in os.getloadavg()], **figures}
    print(json.dumps(figures, indent=1))
    RESULTS.parent.mkdir(exist_ok=True)
    recorded = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    recorded[args.label or _label()] = figures
    RESULTS.write_text(json.dumps(recorded, indent=1) + "\n")


if __name__ == "__main__":
    main()
