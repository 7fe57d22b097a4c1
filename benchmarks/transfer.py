"""Large inputs and outputs through a deal: MiB/s and the nodes' peak RSS growth.

    python benchmarks/transfer.py [--mib 1024] [--relay-mib 64] [--paths direct,relay]
                                  [--muxer mplex|yamux] [--out transfer.json]

A real market on this machine (anvil, one provider, one client, real node processes, Docker):
the client runs the `python` module, targeted at the provider, on one input file of `--mib`
MiB of random bytes (passed by path, as `lilypad-p2p run --file` does); the job copies it to
`/outputs`, so the same amount comes back as a sealed chunk stream. `direct`: both nodes on
loopback. `relay`: each node behind its own symmetric NAT (the NAT lab's namespaces, root
needed), every byte through a circuit relay, with `--relay-mib` (a relay moves ~2 MiB/s, and
a circuit carries at most `relay_circuit_bytes`, 1 GiB by default).

A small job runs first on each path (the provider builds the module's image archive once,
whatever the job's size); then the measured job. Figures:

- wire MiB/s: (input + output MiB) / (running -> accepted minus the provider's `job.finished`
  seconds), i.e. both chunk streams, with sealing, opening, spooling and the hash check;
- end to end: submit (the client seals the input to its spool) -> accepted, in seconds;
- the provider's job seconds: unpacking the input into the job's directory, the container's
  copy, writing and hashing the output tarball;
- peak RSS growth of each node: its VmHWM after the measured job minus its VmHWM before it.

`--muxer` sets every node's `muxer` (both are offered; the dialer's first choice wins).
Writes benchmarks/results/transfer.json (or `--out`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lilypad_p2p.localnet import MarketWorld, NodeProcess, market_world
from lilypad_p2p.testing import random_file, require_docker
from lilypad_p2p.testing._nat_lab import NatLab, lab_missing

MIB = 2**20
JOB_TIMEOUT_S = 1800.0
FINAL = {"accepted", "settled", "rejected", "timed_out", "cancelled"}
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
    found = re.findall(r"\"job\.finished\".*?\"seconds\": ?([0-9.]+)",
                       provider.log_path.read_text())
    assert found, "the provider logged no job.finished"
    return float(found[-1])


def _measure(world: MarketWorld, client: NodeProcess, provider: NodeProcess, tmp: Path,
             mib: int) -> dict[str, Any]:
    script = tmp / "main.py"
    script.write_bytes(COPY_SCRIPT)
    address = provider.call("status")["address"]

    def run(data: Path) -> tuple[dict[str, Any], float]:
        submitted = time.monotonic()
        key = client.call("submit", {
            "module": "python", "params": {"script": "main.py"},
            "file_paths": {"main.py": str(script), "data.bin": str(data)},
            "target": address, "deadline_s": int(JOB_TIMEOUT_S),
        })["key"]
        deal = world.wait_for_phase(client, key, FINAL, timeout_s=JOB_TIMEOUT_S)
        if deal["phase"] not in ("accepted", "settled"):
            raise SystemExit(f"the job ended {deal['phase']}: {deal['error']}\n"
                             f"{client.log_tail(30)}\n{provider.log_tail(30)}")
        return deal, time.monotonic() - submitted

    run(random_file(tmp / "warm.bin", 1))
    pids = {"client": client.process.pid, "provider": provider.process.pid}
    before = {name: _kib(pid, "VmHWM") for name, pid in pids.items()}
    rss = {name: _kib(pid, "VmRSS") for name, pid in pids.items()}
    data = random_file(tmp / "data.bin", mib)
    deal, end_to_end_s = run(data)
    after = {name: _kib(pid, "VmHWM") for name, pid in pids.items()}
    job_s = _job_seconds(provider)
    running_to_accepted_s = (_at(deal, "accepted") - _at(deal, "running")) / 1000
    wire_s = max(running_to_accepted_s - job_s, 1e-3)
    data.unlink()
    return {
        "input_mib": mib, "output_mib": mib,
        "end_to_end_s": round(end_to_end_s, 1),
        "running_to_accepted_s": round(running_to_accepted_s, 1),
        "provider_job_s": round(job_s, 1),
        "wire_mib_s": round(2 * mib / wire_s, 1),
        "end_to_end_mib_s": round(2 * mib / end_to_end_s, 1),
        "rss_before_mib": {k: round(v / 1024, 1) for k, v in rss.items()},
        "peak_rss_mib": {k: round(v / 1024, 1) for k, v in after.items()},
        "peak_rss_growth_mib": {k: round((after[k] - before[k]) / 1024, 1) for k in pids},
    }


def direct(tmp: Path, mib: int, env: dict[str, str]) -> dict[str, Any]:
    with market_world(tmp / "market") as world:
        provider = world.start("provider", roles=["provider"], env=env)
        client = world.start("client", roles=["client"], bootstrap=[provider.dial_addr],
                             env=env)
        world.wait_until_known(client, [provider])
        return {"path": "direct (loopback)", **_measure(world, client, provider, tmp, mib)}


def relay(tmp: Path, mib: int, env: dict[str, str]) -> dict[str, Any]:
    missing = lab_missing()
    if missing:
        return {"path": "relay", "skipped": missing}
    lab = NatLab(symmetric=True, uplink=True)
    homes = tmp / "market"  # the world prepares (funds, configures) the homes under it
    with lab.running(), market_world(homes, anvil_host=lab.uplink_ip()) as world:
        try:
            relay_node = lab.start_node("relay", homes / "relay", ["--relay"], env=env)
            bootstrap = ["--bootstrap", lab.relay_multiaddr(relay_node.wait_ready()["peer_id"])]
            world.prepare_home("provider")
            world.prepare_home("client")
            provider = lab.start_node("hosta", homes / "provider", ["--provider", *bootstrap],
                                      env=env)
            client = lab.start_node("hostb", homes / "client", ["--client", *bootstrap],
                                    env=env)
            provider_id = provider.wait_ready()["peer_id"]
            client.wait_ready()
            lab.wait_until(lambda: provider.call("status")["nat"]["reservations"],
                           "the provider's relay reservation")
            world.wait_until_known(client, [provider])
            figures = _measure(world, client, provider, tmp, mib)
            relayed = provider_id in client.call("status")["nat"]["relayed_peers"]
        finally:
            lab.stop_nodes()
    return {"path": "relay (two symmetric NATs)", "stayed_relayed": relayed, **figures,
            "leftovers": lab.leftovers()}


PATHS: dict[str, Callable[[Path, int, dict[str, str]], dict[str, Any]]] = {
    "direct": direct, "relay": relay,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--relay-mib", type=int, default=64)
    parser.add_argument("--paths", default="direct,relay")
    parser.add_argument("--muxer", choices=["mplex", "yamux"], default="mplex")
    parser.add_argument("--out", default=RESULTS.name, help="file name under results/")
    args = parser.parse_args()
    env = {"LILYPAD_MUXER": args.muxer}
    require_docker("the provider runs the job in Docker", image="lilypad-p2p/python")
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "muxer": args.muxer,
        "targets": {"peak_rss_growth_mib": RSS_GROWTH_TARGET_MIB,
                    "direct_mib_s": DIRECT_TARGET_MIB_S},
        "runs": [],
    }
    for name in args.paths.split(","):
        load_before = os.getloadavg()
        with tempfile.TemporaryDirectory(prefix=f"lilypad-transfer-{name}-") as tmp:
            run = PATHS[name](Path(tmp), args.relay_mib if name == "relay" else args.mib, env)
        run["load_before"] = [round(x, 2) for x in load_before]
        run["load_after"] = [round(x, 2) for x in os.getloadavg()]
        print(json.dumps(run, indent=2), flush=True)
        results["runs"].append(run)
        out = RESULTS.parent / args.out  # after each path: a later one may fail
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
