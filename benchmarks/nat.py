"""NAT milestones in the namespace lab: reachability known, reservation, relayed stream, direct.

    sudo python benchmarks/nat.py [--runs N]

Each run builds the lab (lilypad_p2p/testing/_nat_lab.py: a public relay, two providers behind
their own MASQUERADE NAT), starts real node processes and reads each private node's own NAT
timeline (seconds since its NAT service started) from `status`; then A pings B through the relay.
Writes benchmarks/results/nat.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from lilypad_p2p.testing._nat_lab import NODE_PORT, NatLab, lab_missing

MILESTONE_TIMEOUT_S = 30.0
DCUTR_WAIT_S = 20.0
POLL_S = 0.1


def _wait(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if condition():
                return True
        except Exception:  # the control socket is not up yet
            pass
        time.sleep(POLL_S)
    return False


def one_run(base: Path) -> dict[str, object]:
    lab = NatLab()
    with lab.running():
        relay = lab.start_node("relay", base / "relay", ["--relay"])
        peer = relay.wait_ready()["peer_id"]
        bootstrap = f"/ip4/{lab.relay_ip()}/tcp/{NODE_PORT}/p2p/{peer}"
        a = lab.start_node("hosta", base / "a", ["--bootstrap", bootstrap])
        b = lab.start_node("hostb", base / "b", ["--bootstrap", bootstrap])
        a.wait_ready()
        b_peer = b.wait_ready()["peer_id"]
        _wait(lambda: b.call("status")["nat"]["circuit_addrs"], MILESTONE_TIMEOUT_S)
        addrs = b.call("status")["nat"]["circuit_addrs"]
        ping = a.call("nat.ping", {"peer_id": b_peer, "addrs": addrs})
        _wait(lambda: a.call("status")["nat"]["timeline_s"]["first_direct_upgrade"], DCUTR_WAIT_S)
        timeline = a.call("status")["nat"]["timeline_s"]
    leftovers = lab.leftovers()
    return {"timeline_s": timeline, "relayed_ping_ms": ping["rtt_ms"],
            "ping_connection": ping["connection"], "leftovers": leftovers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    missing = lab_missing()
    if missing:
        raise SystemExit(f"cannot run the NAT lab: {missing}")
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(args.runs):
            runs.append(one_run(Path(tmp) / str(index)))
            print(json.dumps(runs[-1]))
    summary: dict[str, object] = {}
    for name in runs[0]["timeline_s"]:  # type: ignore[union-attr]
        values = [r["timeline_s"][name] for r in runs if r["timeline_s"][name] is not None]  # type: ignore[index]
        summary[name] = {"median_s": statistics.median(values) if values else None,
                         "reached": f"{len(values)}/{len(runs)}"}
    summary["relayed_ping_ms_median"] = statistics.median(r["relayed_ping_ms"] for r in runs)  # type: ignore[misc]
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "load_avg_1m": os.getloadavg()[0], "runs": runs, "summary": summary}
    print(json.dumps(summary, indent=2))
    out = Path(__file__).parent / "results" / "nat.json"
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
