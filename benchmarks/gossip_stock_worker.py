"""One OS process of the gossip benchmark's stock arm: plain py-libp2p hosts and GossipSub.

Each node is `libp2p.new_host()` as the library builds it (fresh Ed25519 key; Noise first in
its security list, then TLS, SECIO and plaintext; Yamux first, Mplex second) running stock
`GossipSub` under a `Pubsub` with every default. Two numbers have no library default and are
chosen here: the protocols (meshsub 1.2, 1.1, 1.0: what go-libp2p offers by default) and the
mesh degree (`--degree`, the spec's 6/4/12 unless told). `--heartbeat` is the library's 120 s
unless told. The one subclass only counts dropped outbound RPCs; it changes no behaviour.

The library has no peer discovery of its own (peer exchange is off by default), so the driver
tells each node whom to dial. The topic validator opens the envelope (decode, freshness, the
secp256k1 signature) as any application taking these offers must, like our node's validator.

Driven by benchmarks/gossip.py over stdin/stdout JSON lines:
  -> {"event": "listening", "addrs": [...]}   (every local node's /p2p address, in node order)
  <- "peers <json list, per local node, of the addresses it dials>"
  -> {"event": "meshed", ...}                 (every local node's mesh is full enough, or timeout)
  <- "start <t0 wall seconds>"
  -> {"event": "result", ...}                 (deliveries, latencies, CPU, RSS)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

import multiaddr
import psutil
import trio
from gossip_worker import MARKET, make_offer
from libp2p import new_host
from libp2p.abc import IHost
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11, PROTOCOL_ID_V12, GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from libp2p.tools.anyio_service import background_trio_service

from lilypad_p2p import wire
from lilypad_p2p.identity import Identity
from lilypad_p2p.net import MarketTopic

TOPIC = str(MarketTopic(MARKET))
MESH_TIMEOUT_S = 90.0
MESH_POLL_S = 0.2
DRAIN_S = 10.0


class CountingGossipSub(GossipSub):
    """Stock GossipSub that counts the outbound RPCs its full per-peer queues reject."""

    queue_drops = 0

    def _handle_dropped_rpc(self, peer_id: ID, rpc: rpc_pb2.RPC, reason: str) -> None:
        self.queue_drops += 1
        super()._handle_dropped_rpc(peer_id, rpc, reason)


def _emit(record: dict) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def _valid_offer(_forwarder: ID, msg: rpc_pb2.Message) -> bool:
    try:
        wire.open_envelope(msg.data, now_ms=time.time_ns() // 1_000_000)
    except wire.WireError:
        return False
    return True


class StockNode:
    def __init__(self, degree: tuple[int, int, int], heartbeat_s: float) -> None:
        self.host: IHost = new_host()
        self.gossipsub = CountingGossipSub(
            protocols=[PROTOCOL_ID_V12, PROTOCOL_ID_V11, PROTOCOL_ID],
            degree=degree[0],
            degree_low=degree[1],
            degree_high=degree[2],
            heartbeat_interval=heartbeat_s,  # annotated int, used as trio.sleep's seconds
        )
        self.pubsub = Pubsub(self.host, self.gossipsub)
        self.received: list[tuple[int, int]] = []

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with (
            self.host.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]),
            background_trio_service(self.pubsub),
            background_trio_service(self.gossipsub),
        ):
            await self.pubsub.wait_until_ready()
            self.pubsub.set_topic_validator(TOPIC, _valid_offer, is_async_validator=False)
            subscription = await self.pubsub.subscribe(TOPIC)
            task_status.started()
            while True:
                msg = await subscription.get()
                if ID(msg.from_id) == self.host.get_id():
                    continue
                envelope = wire.SignedEnvelope.from_wire(wire.decode(msg.data))
                now_ms = time.time_ns() // 1_000_000
                self.received.append((envelope.body.nonce, now_ms - envelope.published_at))

    def mesh_size(self) -> int:
        return len(self.gossipsub.mesh.get(TOPIC, ()))

    def topic_peers(self) -> int:
        return len(self.pubsub.peer_topics.get(TOPIC, ()))


async def _dial(node: StockNode, addr: str) -> None:
    try:
        await node.host.connect(info_from_p2p_addr(multiaddr.Multiaddr(addr)))
    except Exception as error:  # a failed dial is reported in the log and the peer counts
        print(f"dial {addr} failed: {error!r}", file=sys.stderr)


def _meshed(node: StockNode, dialled: int, degree_low: int) -> bool:
    """Every connected peer's subscription is known (at least the ones this node dialled) and
    the mesh holds D_low of them, or all of them when fewer."""
    peers = node.topic_peers()
    if peers < dialled or peers < len(node.host.get_connected_peers()):
        return False
    return node.mesh_size() >= min(degree_low, peers)


async def _wait_meshed(nodes: list[StockNode], plan: list[list[str]], degree_low: int) -> float:
    started = trio.current_time()
    with trio.move_on_after(MESH_TIMEOUT_S):
        while not all(
            _meshed(node, len(addrs), degree_low) for node, addrs in zip(nodes, plan, strict=True)
        ):
            await trio.sleep(MESH_POLL_S)
    return trio.current_time() - started


async def main(args: argparse.Namespace) -> None:
    degree = tuple(int(d) for d in args.degree.split(","))
    assert len(degree) == 3, "--degree is D,D_low,D_high"
    identities = [Identity.generate() for _ in range(args.nodes_here)]
    nodes = [StockNode((degree[0], degree[1], degree[2]), args.heartbeat) for _ in identities]
    async with trio.open_nursery() as nursery:
        for node in nodes:
            await nursery.start(node.run)
        _emit({"event": "listening", "addrs": [str(n.host.get_addrs()[0]) for n in nodes]})
        line = await trio.to_thread.run_sync(sys.stdin.readline)
        plan: list[list[str]] = json.loads(line.split(" ", 1)[1])
        async with trio.open_nursery() as dials:
            for node, addrs in zip(nodes, plan, strict=True):
                for addr in addrs:
                    dials.start_soon(_dial, node, addr)
        mesh_s = await _wait_meshed(nodes, plan, degree[1])
        _emit(
            {
                "event": "meshed",
                "seconds": round(mesh_s, 2),
                "mesh_sizes": [n.mesh_size() for n in nodes],
            }
        )

        line = await trio.to_thread.run_sync(sys.stdin.readline)
        start_wall = float(line.split()[1])
        process = psutil.Process()
        cpu_before = process.cpu_times()
        await trio.sleep(max(0.0, start_wall - time.time()))
        for seq in range(args.messages):
            local = seq % args.total_nodes - args.node_offset
            if not 0 <= local < len(nodes):
                continue
            await trio.sleep(max(0.0, start_wall + seq / args.rate - time.time()))
            now_ms = time.time_ns() // 1_000_000
            envelope = make_offer(identities[local], seq, now_ms, args.padding_modules)
            await nodes[local].pubsub.publish(TOPIC, envelope.encode())
        await trio.sleep(max(0.0, start_wall + args.messages / args.rate + DRAIN_S - time.time()))
        cpu_after = process.cpu_times()
        cpu_s = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
        _emit(
            {
                "event": "result",
                "nodes": len(nodes),
                "received": [n.received for n in nodes],
                "cpu_s": cpu_s,
                "rss_bytes": process.memory_info().rss,
                "outbound_queue_drops": sum(n.gossipsub.queue_drops for n in nodes),
                "event_queue_drops": 0,
                "dropped": [{} for _ in nodes],
                "reports": [{} for _ in nodes],
                "graylisted_ignored": 0,
                "peers": [len(n.host.get_connected_peers()) for n in nodes],
                "mesh_sizes": [n.mesh_size() for n in nodes],
                "pid": os.getpid(),
            }
        )
        nursery.cancel_scope.cancel()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes-here", type=int, required=True)
    parser.add_argument("--node-offset", type=int, required=True)
    parser.add_argument("--total-nodes", type=int, required=True)
    parser.add_argument("--messages", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--padding-modules", type=int, default=0)
    parser.add_argument("--degree", default="6,4,12", help="GossipSub D,D_low,D_high")
    parser.add_argument("--heartbeat", type=float, default=120.0, help="seconds (library: 120)")
    return parser.parse_args()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    libp2p_logger = logging.getLogger("libp2p")
    libp2p_logger.setLevel(logging.WARNING)
    libp2p_logger.addHandler(logging.StreamHandler())
    trio.run(main, parse_args())
