"""The README's main job: a small local network of real node processes, end to end.

Today this is the node foundation: N real `lilypad-p2p node` processes on loopback, one of
them the bootstrap, every other a provider that publishes a signed resource offer. The demo
waits until every node's offer book holds every offer, prints what each node sees, stops the
bootstrap and shows that the rest still share offers, then stops everything.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from lilypad_p2p.testing._cluster import LocalCluster, NodeProcess

console = Console()


def offer_owners(node: NodeProcess) -> set[str]:
    try:
        return {offer["owner"] for offer in node.call("offers", {"market": "cpu"})}
    except Exception:  # still starting: asked again until the deadline
        return set()


def show(nodes: list[NodeProcess], title: str) -> None:
    table = Table(title=title)
    for column in ("node", "peer id", "address", "peers", "offers seen", "gossip delivered"):
        table.add_column(column)
    for node in nodes:
        status = node.call("status")
        table.add_row(
            node.name,
            status["peer_id"][-10:],
            status["address"],
            str(status["peers"]),
            str(len(node.call("offers", {"market": "cpu"}))),
            str(status["gossip"]["delivered"]),
        )
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=6, help="number of node processes")
    parser.add_argument("--dir", type=Path, help="where node homes go (default: a temp dir)")
    args = parser.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="lilypad-demo-"))
    cluster = LocalCluster(base)
    with cluster.running():
        console.print(f"[bold]starting {args.nodes} real nodes[/] (homes and logs in {base})")
        boot = cluster.start_node("boot", roles=["provider"])
        boot.wait_ready()
        nodes = [boot] + [
            cluster.start_node(f"node{i}", roles=["provider"], bootstrap=[boot.dial_addr])
            for i in range(1, args.nodes)
        ]
        for node in nodes:
            node.wait_ready()
        owners = {node.status["address"] for node in nodes}
        took = cluster.wait_until(
            lambda: all(offer_owners(node) >= owners for node in nodes),
            timeout_s=60,
            what="every node to see every offer",
        )
        console.print(f"every node holds all {len(owners)} signed offers after {took:.1f} s")
        show(nodes, "the network")

        console.print("[bold]stopping the bootstrap node[/]")
        boot.stop()
        late = cluster.start_node("late", roles=["provider"], bootstrap=[nodes[-1].dial_addr])
        late.wait_ready()
        survivors = [*nodes[1:], late]
        expected = {node.status["address"] for node in survivors}
        took = cluster.wait_until(
            lambda: all(offer_owners(node) >= expected for node in survivors),
            timeout_s=60,
            what="the survivors and a late joiner to share offers",
        )
        console.print(
            f"without the bootstrap, survivors and a late joiner share offers after {took:.1f} s"
        )
        show(survivors, "the network without its bootstrap")
    unclean = [node.name for node in cluster.nodes if node.process.returncode != 0]
    if unclean:
        raise SystemExit(f"nodes that did not exit cleanly: {unclean}; logs under {base}")
    console.print("[green]all nodes stopped cleanly[/]")


if __name__ == "__main__":
    main()
