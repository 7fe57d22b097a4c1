"""The README's main job: a small real market on this machine, end to end.

Starts anvil (a real EVM chain) and deploys the settlement contract; starts real
`lilypad-p2p node` processes on loopback (providers, solvers, a client), each with its own key,
a funded account and a deposit on the contract; posts jobs (not targeted: the solvers match
them); every job runs in Docker on the provider its deal names; the client verifies the output
against the provider's signed result hash and signs the acceptance; the providers settle on
chain. Prints each job's path and output, and how the balances moved.
"""

from __future__ import annotations

import argparse
import tarfile
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from lilypad_p2p.localnet import MarketWorld, market_world

# Wide enough for the jobs table when the output is not a terminal (CI logs).
console = Console(width=max(Console().width, 110))
FINAL = {"settled", "rejected", "cancelled", "timed_out"}
JOB_TIMEOUT_S = 180.0
TEXT = "the quick brown fox jumps over the lazy dog and the dog sleeps"


def _jobs(count: int) -> list[dict[str, object]]:
    import base64

    jobs: list[dict[str, object]] = []
    for i in range(count):
        if i % 2:
            data = base64.b64encode(f"{TEXT} {i}\n".encode()).decode()
            jobs.append({"module": "wordcount", "params": {"top": 3},
                         "files": {"input.txt": data}})
        else:
            jobs.append({"module": "hash", "params": {"text": f"job {i}: {TEXT}"}})
    return jobs


def _output(result_path: str) -> str:
    with tarfile.open(result_path) as archive:
        first = sorted(m.name for m in archive.getmembers() if m.isfile())[0]
        member = archive.extractfile(first)
        text = member.read().decode(errors="replace").strip() if member else ""
    return f"{first} {' '.join(text.split())[:12]}"


def _eth(wei: int) -> str:
    return f"{wei / 10**18:.4f} ETH"


def run_market(world: MarketWorld, providers: int, solvers: int, jobs: int) -> None:
    console.print(f"[bold]anvil at {world.rpc_url}, settlement contract {world.contract}[/]")
    boot = world.start("provider-1", roles=["provider"])
    nodes = [boot] + [
        world.start(f"provider-{i}", roles=["provider"], bootstrap=[boot.dial_addr])
        for i in range(2, providers + 1)
    ]
    nodes += [world.start(f"solver-{i}", roles=["solver"], bootstrap=[boot.dial_addr])
              for i in range(1, solvers + 1)]
    client = world.start("client", roles=["client"], bootstrap=[boot.dial_addr])
    provider_nodes = [n for n in nodes if n.name.startswith("provider")]
    world.wait_until_known(client, provider_nodes)
    console.print(f"{len(nodes) + 1} nodes up; the client sees {len(provider_nodes)} "
                  "providers' signed offers")
    everyone = [*provider_nodes, client]
    before = {n.name: world.balance(n.status["address"]) for n in everyone}
    names = {n.status["address"]: n.name for n in everyone}

    started = time.monotonic()
    keys = [(client.call("submit", job)["key"], str(job["module"])) for job in _jobs(jobs)]
    console.print(f"posted {jobs} jobs to the cpu market; {solvers} solvers match them")
    table = Table(title="jobs")
    for column in ("job offer", "module", "provider", "deal", "s", "output", "paid"):
        table.add_column(column, no_wrap=True)
    for key, module in keys:
        deal = world.wait_for_phase(client, key, FINAL, timeout_s=JOB_TIMEOUT_S)
        steps = deal["transitions"]
        seconds = (steps[-1]["at_ms"] - steps[0]["at_ms"]) / 1000
        output = _output(deal["result_path"]) if deal["result_path"] else deal["error"] or ""
        paid = _eth(deal["payment_wei"]) if deal["phase"] == "settled" else "-"
        table.add_row(key[-8:], module, names.get(deal["provider"], "?"), deal["phase"],
                      f"{seconds:.1f}", output, paid)
    took = time.monotonic() - started
    console.print(table)
    console.print(f"{jobs} jobs from posting to settlement in {took:.1f} s")

    world.cluster.wait_until(
        lambda: all(d["phase"] in FINAL for p in provider_nodes for d in p.call("deals")),
        timeout_s=60, what="the providers to settle")
    balances = Table(title="balances on the settlement contract")
    for column in ("node", "before", "after", "change"):
        balances.add_column(column)
    for node in everyone:
        after = world.balance(node.status["address"])
        change = after - before[node.name]
        sign = "+" if change >= 0 else "-"
        balances.add_row(node.name, _eth(before[node.name]), _eth(after),
                         sign + _eth(abs(change)))
    console.print(balances)
    for provider in provider_nodes:
        deals = provider.call("deals")
        console.print(f"{provider.name}: {len(deals)} deals, "
                      f"{sum(d['phase'] == 'settled' for d in deals)} settled")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--providers", type=int, default=3)
    parser.add_argument("--solvers", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=6)
    parser.add_argument("--dir", type=Path, help="where node homes go (default: a temp dir)")
    args = parser.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="lilypad-demo-"))
    console.print(f"[bold]a small real market[/] (node homes and logs in {base})")
    with market_world(base, forked=True) as world:
        run_market(world, args.providers, args.solvers, args.jobs)
        world.stop_all()
        cluster = world.cluster
    unclean = [f"{node.name} ({node.process.returncode})" for node in cluster.nodes
               if node.process.returncode != 0]
    if unclean:
        raise SystemExit(f"nodes that did not exit cleanly: {unclean}; logs under {base}")
    console.print("[green]all nodes stopped cleanly[/]")


if __name__ == "__main__":
    main()
