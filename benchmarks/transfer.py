"""Large inputs and outputs through a deal: MiB/s and the nodes' peak RSS.

    python benchmarks/transfer.py [--mib 8] [--also-refused-gib 1]

A real market on this machine (anvil, one provider, one client, real node processes, Docker):
the client runs the `python` module, targeted at the provider, on one input file of `--mib`
MiB of random bytes (passed by path, as `lilypad-p2p run --file` does); the job copies it to
`/outputs`, so the same amount comes back sealed. Figures, from the client's deal log and the
provider's `job.finished` event:

- transfer MiB/s: (input + output MiB) / (running -> accepted minus the job's own run time),
  i.e. sealing, the job stream both ways, unsealing and the hash check;
- peak RSS growth of each node: its VmHWM after the job minus its VmRSS before.

Then a job of `--also-refused-gib` GiB is submitted to record that it is refused up front (the
job stream carries one frame per job today, capped at 64 MiB). Only the direct path is
measured: a relayed run needs the NAT lab's namespaces. Writes benchmarks/results/transfer.json.
On the loaded 2-core machine `--mib 48` never finishes: the frame takes longer than the
provider's 30 s request-read timeout, and the client retries until the deadline.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from lilypad_p2p.control import ControlError
from lilypad_p2p.testing import require_docker
from lilypad_p2p.testing._cluster import ClusterError, NodeProcess
from lilypad_p2p.testing._market import market_world

MIB = 2**20
JOB_TIMEOUT_S = 300.0
RSS_GROWTH_TARGET_MIB = 64
DIRECT_TARGET_MIB_S = 50
RESULTS = Path(__file__).parent / "results" / "transfer.json"
COPY_SCRIPT = b"""\
import shutil
with open('/inputs/data.bin', 'rb') as src, open('/outputs/data.bin', 'wb') as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
"""


def _kib(pid: int, field: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
    assert match is not None, f"no {field} in /proc/{pid}/status"
    return int(match.group(1))


def _at(deal: dict[str, Any], phase: str) -> int:
    return next(t["at_ms"] for t in deal["transitions"] if t["to"] == phase)


def _job_seconds(provider: NodeProcess) -> float:
    log = provider.log_path.read_text()
    found = re.findall(r"\"job\.finished\".*?\"seconds\": ?([0-9.]+)", log)
    assert found, "the provider logged no job.finished"
    return float(found[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=8)
    parser.add_argument("--also-refused-gib", type=int, default=1)
    args = parser.parse_args()
    require_docker("the provider runs the job in Docker", image="lilypad-p2p/python")
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="lilypad-transfer-") as tmp, market_world(
        Path(tmp) / "market"
    ) as world:
        data = Path(tmp) / "data.bin"
        data.write_bytes(os.urandom(args.mib * MIB))
        script = Path(tmp) / "main.py"
        script.write_bytes(COPY_SCRIPT)
        provider = world.start("provider", roles=["provider"])
        client = world.start("client", roles=["client"], bootstrap=[provider.dial_addr])
        world.wait_until_known(client, [provider])
        pids = {"client": client.process.pid, "provider": provider.process.pid}
        rss_before = {name: _kib(pid, "VmRSS") for name, pid in pids.items()}
        key = client.call("submit", {
            "module": "python", "params": {"script": "main.py"},
            "file_paths": {"main.py": str(script), "data.bin": str(data)},
            "target": provider.status["address"], "deadline_s": int(JOB_TIMEOUT_S),
        })["key"]
        try:
            deal = world.wait_for_phase(client, key, {"accepted", "settled", "rejected",
                                                      "timed_out", "cancelled"},
                                        timeout_s=JOB_TIMEOUT_S)
        except ClusterError as exc:
            raise SystemExit(f"{exc}\n{provider.log_tail(40)}") from exc
        if deal["phase"] not in ("accepted", "settled"):
            raise SystemExit(f"the job ended {deal['phase']}: {deal['error']}\n"
                             f"{deal['transitions']}\n{client.log_tail(40)}\n"
                             f"{provider.log_tail(40)}")
        peak = {name: _kib(pid, "VmHWM") for name, pid in pids.items()}
        running_to_accepted_s = (_at(deal, "accepted") - _at(deal, "running")) / 1000
        job_s = _job_seconds(provider)
        moved_mib = 2 * args.mib
        transfer_s = max(running_to_accepted_s - job_s, 1e-3)

        big = Path(tmp) / "big.bin"
        with open(big, "wb") as fh:  # sparse: the refusal must come before any read
            fh.truncate(args.also_refused_gib * 1024 * MIB)
        try:
            client.call("submit", {"module": "python", "file_paths": {"big.bin": str(big)},
                                   "target": provider.status["address"]})
            refusal = "accepted (not refused)"
        except ControlError as exc:
            refusal = str(exc)
        world.stop_all()

    growth = {name: round((peak[name] - rss_before[name]) / 1024, 1) for name in pids}
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "path": "direct (loopback)",
        "input_mib": args.mib,
        "output_mib": args.mib,
        "running_to_accepted_s": round(running_to_accepted_s, 2),
        "job_run_s": round(job_s, 2),
        "transfer_mib_s": round(moved_mib / transfer_s, 1),
        "rss_before_mib": {k: round(v / 1024, 1) for k, v in rss_before.items()},
        "peak_rss_mib": {k: round(v / 1024, 1) for k, v in peak.items()},
        "peak_rss_growth_mib": growth,
        "rss_growth_per_input_mib": {k: round(v / args.mib, 2) for k, v in growth.items()},
        f"{args.also_refused_gib}_gib_input": refusal,
        "targets": {"peak_rss_growth_mib": RSS_GROWTH_TARGET_MIB,
                    "direct_mib_s": DIRECT_TARGET_MIB_S},
    }
    print(json.dumps(results, indent=2))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
