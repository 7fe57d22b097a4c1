"""Soak: one `lilypad-p2p node` process under mixed hostile load beside honest peers.

    python benchmarks/soak.py --minutes 10

The target is a real node process (provider role). Beside it:
- honest: `--honest` GossipNets (our code, fresh keys) connected only to the target; each
  publishes an offer every `--offer-every` seconds, and every other one records when it arrives
  (all in this process, one clock): propagation through the target, p50/p99;
- gossip spam: a plain GossipSub peer pushing invalid envelopes at `--spam-per-s`, with a new
  key each time the node bans the current one;
- stream floods: plain peers opening `/lilypad/job/1` streams with 60 MiB length prefixes and
  `/lilypad/deal/1` streams that never finish, at `--streams-per-s`;
- connection churn: full Noise handshakes then disconnects at `--churn-per-s` in all, from
  `--churn-workers` hosts at once (one at a time reached ~2.6/s: each cycle waits on round
  trips and close delays more than on CPU);
- a socket flood from one address (127.0.0.66) that holds 300 half-open TCP connections.

Attackers are plain py-libp2p hosts, alternately on Yamux and Mplex. Every 5 s: the target's
RSS and its counters (connections accepted/refused, bans). Writes `benchmarks/results/soak.json`
and `benchmarks/results/soak.png`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import trio
from libp2p.peer.peerinfo import info_from_p2p_addr
from multiaddr import Multiaddr

from lilypad_p2p.identity import Identity
from lilypad_p2p.localnet import LocalCluster, NodeProcess
from lilypad_p2p.net import (
    DEAL_PROTOCOL,
    JOB_PROTOCOL,
    GossipNet,
    MarketTopic,
    OfferReceived,
    wall_clock_ms,
)
from lilypad_p2p.testing._hostile import connected_host, publish_direct, raw_host, rss_bytes
from lilypad_p2p.wire import ResourceOffer, ResourceSpec

RESULTS = Path(__file__).parent / "results"
SAMPLE_EVERY_S = 5.0
FLOOD_SOURCE = "127.0.0.66"
FLOOD_SOCKETS = 300
ATTACKER_MUXERS = ("yamux", "mplex")


def _offer(owner: Identity, nonce: int):
    now = wall_clock_ms()
    body = ResourceOffer(
        market="cpu", provider=owner.address,
        spec=ResourceSpec(milli_cpu=1000, ram_mb=1024, disk_mb=1024), modules=("busybox-echo",),
        price_per_job_wei=1, collateral_wei=1, trusted_mediators=(), chain_ids=(31337,),
        created_at=now, expires_at=now + 600_000, nonce=nonce,
    )
    return owner.sign_envelope(body, now)


class Soak:
    def __init__(self, node: NodeProcess, args: argparse.Namespace) -> None:
        self.node = node
        self.args = args
        self.published: dict[str, float] = {}
        self.latencies_s: list[float] = []
        self.samples: list[dict] = []
        self._attackers = -1
        self._started = self._elapsed_s = 0.0
        self.attacks = {"spam_messages": 0, "spam_keys": 0, "streams": 0, "churn": 0,
                        "churn_failed": 0, "flood_sockets": 0}

    async def run(self) -> None:
        self._started = time.monotonic()
        deadline = trio.current_time() + self.args.minutes * 60
        async with trio.open_nursery() as nursery:
            nets = []
            for _ in range(self.args.honest):
                identity = Identity.generate()
                net = GossipNet(identity, listen_addrs=["/ip4/127.0.0.1/tcp/0"],
                                bootstrap=[self.node.dial_addr], markets=("cpu",),
                                target_connections=1)
                await nursery.start(net.run)
                nets.append((net, identity))
            for net, identity in nets:
                nursery.start_soon(self._receive, net, identity)
            for attack in (self._spam, self._streams, self._flood):
                nursery.start_soon(_forever, attack)
            for _ in range(self.args.churn_workers):
                nursery.start_soon(_forever, self._churn)
            nursery.start_soon(self._sample)
            await trio.sleep(5)  # meshes form
            nonce = 0
            while trio.current_time() < deadline:
                for net, identity in nets:
                    nonce += 1
                    offer = _offer(identity, nonce)
                    self.published[offer.envelope_id] = time.monotonic()
                    with contextlib.suppress(Exception):
                        await net.publish(offer)
                await trio.sleep(self.args.offer_every)
            await trio.sleep(5)  # the last offers arrive
            self._elapsed_s = time.monotonic() - self._started
            nursery.cancel_scope.cancel()

    def _muxer(self) -> str:
        """Attackers alternate between the muxers a node accepts, Yamux (its default) first."""
        self._attackers += 1
        return ATTACKER_MUXERS[self._attackers % len(ATTACKER_MUXERS)]

    async def _receive(self, net: GossipNet, identity: Identity) -> None:
        async for event in net.events:
            if isinstance(event, OfferReceived):
                sent = self.published.get(event.envelope.envelope_id)
                if sent is not None and event.envelope.signer != identity.address:
                    self.latencies_s.append(time.monotonic() - sent)

    async def _sample(self) -> None:
        start = time.monotonic()
        while True:
            with contextlib.suppress(Exception):
                status = await trio.to_thread.run_sync(self.node.call, "status")
                gossip = status["gossip"]
                self.samples.append({
                    "t_s": round(time.monotonic() - start, 1),
                    "rss_mb": round(rss_bytes(self.node.process.pid) / 2**20, 1),
                    "accepted": gossip["connections_accepted"],
                    "refused": sum(gossip["connections_refused"].values()),
                    "refused_by_reason": gossip["connections_refused"],
                    "banned": gossip["banned_peers"],
                    "peers": gossip["connected_peers"],
                })
            await trio.sleep(SAMPLE_EVERY_S)

    async def _spam(self) -> None:
        stranger = Identity.generate()
        async with connected_host(self.node.dial_addr, self._muxer()) as (host, target):
            self.attacks["spam_keys"] += 1
            topic = str(MarketTopic("cpu"))
            while host.get_network().get_connections(target):
                payload = _offer(stranger, self.attacks["spam_messages"]).encode()
                await publish_direct(host, target, topic, [payload])
                self.attacks["spam_messages"] += 1
                await trio.sleep(1 / self.args.spam_per_s)

    async def _streams(self) -> None:
        async with connected_host(self.node.dial_addr, self._muxer()) as (host, target):
            while host.get_network().get_connections(target):
                for protocol, prefix in ((JOB_PROTOCOL, 60 << 20), (DEAL_PROTOCOL, 1 << 15)):
                    stream = await host.new_stream(target, [protocol])
                    await stream.write(prefix.to_bytes(4, "big"))
                    self.attacks["streams"] += 1
                await trio.sleep(2 / self.args.streams_per_s)

    async def _churn(self) -> None:
        host = raw_host(Identity.generate(), self._muxer())
        info = info_from_p2p_addr(Multiaddr(self.node.dial_addr))
        async with host.run([Multiaddr("/ip4/127.0.0.1/tcp/0")]):
            while True:
                started = trio.current_time()
                try:
                    with trio.fail_after(10):
                        await host.connect(info)
                        await host.disconnect(info.peer_id)
                    self.attacks["churn"] += 1
                except Exception:  # refused or timed out: counted
                    self.attacks["churn_failed"] += 1
                await trio.sleep_until(
                    started + self.args.churn_workers / self.args.churn_per_s
                )

    async def _flood(self) -> None:
        port = int(Multiaddr(self.node.dial_addr).value_for_protocol("tcp"))
        sockets = []
        try:
            for _ in range(FLOOD_SOCKETS):
                with contextlib.suppress(OSError):
                    sockets.append(await trio.open_tcp_stream(
                        "127.0.0.1", port, local_address=FLOOD_SOURCE))
            self.attacks["flood_sockets"] += len(sockets)
            await trio.sleep(30)
        finally:
            for sock in sockets:
                with contextlib.suppress(Exception):
                    await sock.aclose()

    def report(self) -> dict:
        lat = sorted(self.latencies_s)
        expected = len(self.published) * (self.args.honest - 1)

        def pct(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))], 3) if lat else None

        return {
            "minutes": self.args.minutes,
            "honest_peers": self.args.honest,
            "offers_published": len(self.published),
            "deliveries": len(lat),
            "delivery_ratio": round(len(lat) / expected, 4) if expected else None,
            "propagation_p50_s": pct(0.5),
            "propagation_p99_s": pct(0.99),
            "propagation_mean_s": round(statistics.fmean(lat), 3) if lat else None,
            "rss_mb_max": max((s["rss_mb"] for s in self.samples), default=None),
            "node_alive": self.node.process.poll() is None,
            "attacks": self.attacks,
            "churn_per_s_achieved": round(self.attacks["churn"] / self._elapsed_s, 2),
            "settings": vars(self.args),
            "samples": self.samples,
            "load_average": os.getloadavg(),
        }


async def _forever(attack) -> None:
    while True:
        with contextlib.suppress(Exception):
            await attack()
        await trio.sleep(0.5)


def _plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = report["samples"]
    t = [s["t_s"] for s in samples]
    figure, (rss, conns) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    rss.plot(t, [s["rss_mb"] for s in samples])
    rss.axhline(300, color="red", linestyle="--", label="300 MB budget")
    rss.set_ylabel("node RSS (MB)")
    rss.legend()
    conns.plot(t, [s["accepted"] for s in samples], label="accepted (total)")
    conns.plot(t, [s["refused"] for s in samples], label="refused (total)")
    conns.plot(t, [s["banned"] for s in samples], label="banned now")
    conns.set_xlabel("seconds")
    conns.set_ylabel("connections")
    conns.legend()
    figure.suptitle(
        f"soak {report['minutes']} min: honest propagation p50 {report['propagation_p50_s']} s, "
        f"p99 {report['propagation_p99_s']} s"
    )
    figure.savefig(path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--honest", type=int, default=3)
    parser.add_argument("--offer-every", type=float, default=5.0)
    parser.add_argument("--spam-per-s", type=float, default=20.0)
    parser.add_argument("--streams-per-s", type=float, default=10.0)
    parser.add_argument("--churn-per-s", type=float, default=20.0)
    parser.add_argument("--churn-workers", type=int, default=8)
    args = parser.parse_args()
    cluster = LocalCluster(Path(tempfile.mkdtemp(prefix="soak-")))
    with cluster.running():
        node = cluster.start_node("target", roles=["provider"])
        node.wait_ready()
        soak = Soak(node, args)
        trio.run(soak.run)
        report = soak.report()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "soak.json").write_text(json.dumps(report, indent=2) + "\n")
    _plot(report, RESULTS / "soak.png")
    summary = {k: v for k, v in report.items() if k != "samples"}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
