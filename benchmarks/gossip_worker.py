"""One OS process of the gossip benchmark: hosts several GossipNet nodes, publishes its share.

Driven by benchmarks/gossip.py over stdin/stdout JSON lines:
  -> {"event": "listening", "addr": ...}   (the first node's address, used as bootstrap)
  -> {"event": "meshed", ...}              (every local node has a full enough mesh)
  <- "start <t0 wall seconds>"
  -> {"event": "result", ...}              (deliveries, latencies, CPU, RSS)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

import psutil
import trio

from lilypad_p2p.identity import Identity
from lilypad_p2p.net import GossipNet, MarketTopic, MeshDegree, Muxer, OfferReceived
from lilypad_p2p.wire import ResourceOffer, ResourceSpec

MARKET = "cpu"
OFFER_LIFETIME_MS = 600_000
# How long nodes may take to form their meshes before the run starts anyway.
MESH_TIMEOUT_S = 90.0
MESH_POLL_S = 0.2
# After the last scheduled publish, how long stragglers may still arrive.
DRAIN_S = 10.0


def _emit(record: dict) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def make_offer(identity: Identity, nonce: int, now_ms: int, padding_modules: int) -> bytes:
    body = ResourceOffer(
        market=MARKET,
        provider=identity.address,
        spec=ResourceSpec(milli_cpu=4000, ram_mb=8192, disk_mb=20000),
        modules=tuple(sorted(f"bench/module-{i:03d}:v1" for i in range(padding_modules))),
        price_per_job_wei=10**15,
        collateral_wei=10**16,
        trusted_mediators=(),
        chain_ids=(31337,),
        created_at=now_ms,
        expires_at=now_ms + OFFER_LIFETIME_MS,
        nonce=nonce,
    )
    return identity.sign_envelope(body, now_ms)


async def _wait_meshed(nets: list[GossipNet], expected_peers: int, degree_low: int) -> float:
    topic = str(MarketTopic(MARKET))
    wanted = min(degree_low, expected_peers)
    started = trio.current_time()
    with trio.move_on_after(MESH_TIMEOUT_S):
        while any(len(net.mesh_peers(topic)) < wanted for net in nets):
            await trio.sleep(MESH_POLL_S)
    return trio.current_time() - started


async def main(args: argparse.Namespace) -> None:
    identities = [Identity.generate() for _ in range(args.nodes_here)]
    degree = MeshDegree(*(int(d) for d in args.degree.split(",")))

    def make_net(identity: Identity, bootstrap: str) -> GossipNet:
        return GossipNet(
            identity,
            listen_addrs=["/ip4/127.0.0.1/tcp/0"],
            bootstrap=[bootstrap] if bootstrap else [],
            markets=[MARKET],
            muxers=(Muxer(args.muxer),),
            mesh_degree=degree,
        )

    nets = [make_net(identities[0], args.bootstrap)]
    received: list[list[tuple[int, int]]] = [[] for _ in identities]

    async def drain(index: int, net: GossipNet) -> None:
        async for event in net.events:
            if isinstance(event, OfferReceived) and event.from_peer != net.peer_id:
                now_ms = time.time_ns() // 1_000_000
                envelope = event.envelope
                received[index].append((envelope.body.nonce, now_ms - envelope.published_at))

    async with trio.open_nursery() as nursery:
        await nursery.start(nets[0].run)
        bootstrap = args.bootstrap or nets[0].listen_addrs()[0]
        if not args.bootstrap:
            _emit({"event": "listening", "addr": bootstrap})
        for identity in identities[1:]:
            nets.append(make_net(identity, bootstrap))
            await nursery.start(nets[-1].run)
        for index, net in enumerate(nets):
            nursery.start_soon(drain, index, net)
        mesh_s = await _wait_meshed(nets, args.total_nodes - 1, degree.low)
        topic = str(MarketTopic(MARKET))
        mesh_sizes = [len(net.mesh_peers(topic)) for net in nets]
        _emit({"event": "meshed", "seconds": round(mesh_s, 2), "mesh_sizes": mesh_sizes})

        line = await trio.to_thread.run_sync(sys.stdin.readline)
        start_wall = float(line.split()[1])
        process = psutil.Process()
        cpu_before = process.cpu_times()
        await trio.sleep(max(0.0, start_wall - time.time()))
        for seq in range(args.messages):
            node = seq % args.total_nodes
            local = node - args.node_offset
            if not 0 <= local < len(nets):
                continue
            due = start_wall + seq / args.rate
            await trio.sleep(max(0.0, due - time.time()))
            now_ms = time.time_ns() // 1_000_000
            envelope = make_offer(identities[local], seq, now_ms, args.padding_modules)
            await nets[local].publish(envelope)
        end_wall = start_wall + args.messages / args.rate + DRAIN_S
        await trio.sleep(max(0.0, end_wall - time.time()))
        cpu_after = process.cpu_times()
        cpu_s = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
        stats = [net.statistics() for net in nets]
        _emit(
            {
                "event": "result",
                "nodes": len(nets),
                "received": received,
                "cpu_s": cpu_s,
                "rss_bytes": process.memory_info().rss,
                "outbound_queue_drops": sum(s.outbound_queue_drops for s in stats),
                "event_queue_drops": sum(s.event_queue_drops for s in stats),
                "dropped": [s.dropped for s in stats],
                "reports": [s.reports for s in stats],
                "graylisted_ignored": sum(s.graylisted_messages_ignored for s in stats),
                "peers": [s.connected_peers for s in stats],
                "mesh_sizes": [len(net.mesh_peers(str(MarketTopic(MARKET)))) for net in nets],
                "pid": os.getpid(),
            }
        )
        nursery.cancel_scope.cancel()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes-here", type=int, required=True)
    parser.add_argument("--node-offset", type=int, required=True)
    parser.add_argument("--total-nodes", type=int, required=True)
    parser.add_argument("--bootstrap", default="")
    parser.add_argument("--muxer", choices=[m.value for m in Muxer], default="yamux")
    parser.add_argument("--messages", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--padding-modules", type=int, default=0)
    parser.add_argument("--degree", default="4,3,6", help="GossipSub D,D_low,D_high")
    return parser.parse_args()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    # py-libp2p's logger does not propagate: attach our handler to see its warnings.
    libp2p_logger = logging.getLogger("libp2p")
    libp2p_logger.setLevel(logging.WARNING)
    libp2p_logger.addHandler(logging.StreamHandler())
    trio.run(main, parse_args())
