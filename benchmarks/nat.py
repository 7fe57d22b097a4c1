"""NAT figures in the namespace lab (lilypad_p2p/testing/_nat_lab.py), real node processes.

    sudo python benchmarks/nat.py [--scenario milestones|failover|deal|bulk|bulk-direct] [--runs N]
                                  [--muxer mplex|yamux]

- milestones: a public relay, two hosts behind their own port-preserving MASQUERADE NAT. Reads
  node A's own NAT timeline (seconds since its NAT service started: reachability known,
  reservation, first relayed connection and stream, DCUtR direct upgrade) from `status`; A
  pings B through the relay once B advertises a circuit address.
- failover: two relays, A and B behind symmetric NATs (no hole punching), A keeps one
  reservation. The relay holding it is killed: seconds until A holds a reservation on the other
  relay, and until B's ping gets through to A over it.
- deal: a provider and a client behind symmetric NATs, anvil on the lab's uplink, one targeted
  `hash` job in Docker: seconds from submit to settled, all deal streams relayed.
- bulk (loopback, in-process GossipNets, no root needed): a relay, a server reserved on it and
  an asker that knows only the circuit address; `BULK_BYTES` written on one relayed stream, timed
  until the server reports how many it read (relayed throughput, e.g. job inputs and results).
  bulk-direct: the same over a direct connection, for comparison.

Every node runs `--muxer` (default: the nodes' default). Writes
benchmarks/results/nat[-<scenario>][-<muxer>].json (the default scenario and muxer unsuffixed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import trio
from libp2p.abc import INetStream
from libp2p.connection_types import ConnectionType
from libp2p.custom_types import TProtocol
from libp2p.network.stream.exceptions import StreamEOF

from lilypad_p2p.identity import Identity
from lilypad_p2p.localnet import market_world
from lilypad_p2p.net import DEFAULT_MUXER, GossipNet, Muxer, NatSettings
from lilypad_p2p.testing._nat_lab import NatLab, lab_missing

MILESTONE_TIMEOUT_S = 30.0
DCUTR_WAIT_S = 20.0
FAILOVER_TIMEOUT_S = 30.0
DEAL_TIMEOUT_S = 120.0
POLL_S = 0.05
FINAL_PHASES = {"settled", "rejected", "cancelled", "timed_out"}
BULK_PROTOCOL = TProtocol("/lilypad-bench/bulk/1")
BULK_BYTES = 8 * 1024 * 1024
BULK_WRITE_BYTES = 64 * 1024
BULK_TIMEOUT_S = 120.0


def _wait(condition: Callable[[], object], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if condition():
                return True
        except Exception:  # the control socket is not up yet, or a ping failed
            pass
        time.sleep(POLL_S)
    return False


def milestones_run(base: Path, env: dict[str, str]) -> dict[str, object]:
    lab = NatLab()
    with lab.running():
        relay = lab.start_node("relay", base / "relay", ["--relay"], env=env)
        bootstrap = ["--bootstrap", lab.relay_multiaddr(relay.wait_ready()["peer_id"])]
        a = lab.start_node("hosta", base / "a", bootstrap, env=env)
        b = lab.start_node("hostb", base / "b", bootstrap, env=env)
        a.wait_ready()
        b_peer = b.wait_ready()["peer_id"]
        _wait(lambda: b.call("status")["nat"]["circuit_addrs"], MILESTONE_TIMEOUT_S)
        addrs = b.call("status")["nat"]["circuit_addrs"]
        ping = a.call("nat.ping", {"peer_id": b_peer, "addrs": addrs})
        _wait(lambda: a.call("status")["nat"]["timeline_s"]["first_direct_upgrade"], DCUTR_WAIT_S)
        timeline = a.call("status")["nat"]["timeline_s"]
    return {"timeline_s": timeline, "relayed_ping_ms": ping["rtt_ms"],
            "ping_connection": ping["connection"], "leftovers": lab.leftovers()}


def failover_run(base: Path, env: dict[str, str]) -> dict[str, object]:
    lab = NatLab(relays=2, symmetric=True)
    with lab.running():
        relays, bootstrap = {}, []
        for index, role in enumerate(lab.relay_roles):
            node = lab.start_node(role, base / role, ["--relay"], env=env)
            peer = node.wait_ready()["peer_id"]
            relays[peer] = node
            bootstrap += ["--bootstrap", lab.relay_multiaddr(peer, index)]
        a = lab.start_node("hosta", base / "a", bootstrap,
                           env={**env, "LILYPAD_RELAY_RESERVATIONS": "1"})
        b = lab.start_node("hostb", base / "b", bootstrap, env=env)
        a_peer = a.wait_ready()["peer_id"]
        b.wait_ready()

        def relays_of_a() -> list[str]:
            return [r["relay"] for r in a.call("status")["nat"]["reservations"]]

        def b_pings_a() -> bool:
            addrs = a.call("status")["nat"]["circuit_addrs"]
            answer = b.call("nat.ping", {"peer_id": a_peer, "addrs": addrs})
            return answer["connection"] == "relayed"

        _wait(lambda: relays_of_a() and b.call("status")["nat"]["reachability"] == "private",
              MILESTONE_TIMEOUT_S)
        first = relays_of_a()[0]
        _wait(b_pings_a, MILESTONE_TIMEOUT_S)
        relays[first].kill()
        killed = time.monotonic()
        moved = _wait(lambda: relays_of_a() and relays_of_a()[0] != first, FAILOVER_TIMEOUT_S)
        moved_s = time.monotonic() - killed
        pinged = _wait(b_pings_a, FAILOVER_TIMEOUT_S)
        pinged_s = time.monotonic() - killed
    return {"moved_s": round(moved_s, 3) if moved else None,
            "relayed_again_s": round(pinged_s, 3) if pinged else None,
            "leftovers": lab.leftovers()}


def deal_run(base: Path, env: dict[str, str]) -> dict[str, object]:
    lab = NatLab(symmetric=True, uplink=True)
    with lab.running(), market_world(base, anvil_host=lab.uplink_ip()) as world:
        try:
            relay = lab.start_node("relay", base / "relay", ["--relay"], env=env)
            bootstrap = ["--bootstrap", lab.relay_multiaddr(relay.wait_ready()["peer_id"])]
            world.prepare_home("provider")
            world.prepare_home("client")
            provider = lab.start_node("hosta", base / "provider", ["--provider", *bootstrap],
                                      env=env)
            client = lab.start_node("hostb", base / "client", ["--client", *bootstrap], env=env)
            provider_status = provider.wait_ready()
            client.wait_ready()
            _wait(lambda: provider.call("status")["nat"]["reservations"], MILESTONE_TIMEOUT_S)
            world.wait_until_known(client, [provider])
            submitted = time.monotonic()
            key = client.call("submit", {"module": "hash", "params": {"text": "bench"},
                                         "target": provider_status["address"]})["key"]
            deal = world.wait_for_phase(client, key, FINAL_PHASES, timeout_s=DEAL_TIMEOUT_S)
            elapsed = time.monotonic() - submitted
            nat = client.call("status")["nat"]
        finally:
            lab.stop_nodes()
    return {"phase": deal["phase"], "submit_to_final_s": round(elapsed, 3),
            "relayed": provider_status["peer_id"] in nat["relayed_peers"],
            "direct_upgrades": nat["direct_upgraded_peers"], "leftovers": lab.leftovers()}


def bulk_run(base: Path, env: dict[str, str]) -> dict[str, object]:
    return trio.run(_bulk, Muxer(env["LILYPAD_MUXER"]), True)


def bulk_direct_run(base: Path, env: dict[str, str]) -> dict[str, object]:
    return trio.run(_bulk, Muxer(env["LILYPAD_MUXER"]), False)


async def _bulk(muxer: Muxer, relayed: bool) -> dict[str, object]:
    def gossip_net(relay: bool, bootstrap: tuple[str, ...] = ()) -> GossipNet:
        # One peer each: discovery must not connect asker and server directly.
        return GossipNet(Identity.generate(), listen_addrs=["/ip4/127.0.0.1/tcp/0"],
                         markets=["cpu"], bootstrap=bootstrap, muxers=(muxer,),
                         target_connections=1, nat=NatSettings(relay=relay))

    async def count_and_answer(stream: INetStream) -> None:
        received = 0
        with contextlib.suppress(StreamEOF):
            while chunk := await stream.read(BULK_WRITE_BYTES):
                received += len(chunk)
        await stream.write(str(received).encode())
        await stream.close()

    relay = gossip_net(relay=True)
    async with trio.open_nursery() as nursery:
        await nursery.start(relay.run)
        server = gossip_net(False, (relay.listen_addrs()[0],))
        asker = gossip_net(False, (relay.listen_addrs()[0],))
        await nursery.start(server.run)
        await nursery.start(asker.run)
        server._host.set_stream_handler(BULK_PROTOCOL, count_and_answer)
        with trio.fail_after(MILESTONE_TIMEOUT_S):
            while relayed and not server.nat.circuit_addrs():  # loopback is public: reserve
                await server.nat._reserve(relay.peer_id)
                server.nat._refresh_circuit_addrs()
            addrs = server.nat.circuit_addrs() if relayed else server.listen_addrs()
            await asker.nat.connect(server.peer_id, addrs)
        started = trio.current_time()
        with trio.fail_after(BULK_TIMEOUT_S):
            stream = await asker._host.new_stream(server.peer_id, [BULK_PROTOCOL])
            block = bytes(BULK_WRITE_BYTES)
            for _ in range(BULK_BYTES // BULK_WRITE_BYTES):
                await stream.write(block)
            await stream.close()
            answer = await stream.read(64)
        seconds = trio.current_time() - started
        # The stream's own connection (DCUtR may have added a direct one meanwhile).
        over_relay = stream.muxed_conn.get_connection_type() is ConnectionType.RELAYED
        kind = "relayed" if over_relay else "direct"
        nursery.cancel_scope.cancel()
    return {"bytes": int(answer), "seconds": round(seconds, 3), "connection": kind,
            "mib_per_s": round(int(answer) / seconds / 2**20, 2)}


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarise(scenario: str, runs: list[dict]) -> dict[str, object]:
    if scenario == "milestones":
        summary: dict[str, object] = {}
        for name in runs[0]["timeline_s"]:
            values = [r["timeline_s"][name] for r in runs if r["timeline_s"][name] is not None]
            summary[name] = {"median_s": _median(values), "reached": f"{len(values)}/{len(runs)}"}
        summary["relayed_ping_ms_median"] = _median([r["relayed_ping_ms"] for r in runs])
        return summary
    if scenario.startswith("bulk"):
        return {"mib_per_s_median": _median([r["mib_per_s"] for r in runs]),
                "relayed": sum(r["connection"] == "relayed" for r in runs),
                "complete": sum(r["bytes"] == BULK_BYTES for r in runs)}
    keys = ("moved_s", "relayed_again_s") if scenario == "failover" else ("submit_to_final_s",)
    summary = {
        f"{key}_median": _median([r[key] for r in runs if r[key] is not None]) for key in keys
    }
    summary["runs_complete"] = sum(all(r[k] is not None for k in keys) for r in runs)
    if scenario == "deal":
        summary["settled"] = sum(r["phase"] == "settled" for r in runs)
        summary["relayed"] = sum(bool(r["relayed"]) for r in runs)
    return summary


SCENARIOS = {
    "milestones": milestones_run, "failover": failover_run, "deal": deal_run, "bulk": bulk_run,
    "bulk-direct": bulk_direct_run,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=list(SCENARIOS), default="milestones")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--muxer", choices=[m.value for m in Muxer], default=DEFAULT_MUXER.value)
    args = parser.parse_args()
    missing = None if args.scenario.startswith("bulk") else lab_missing()
    if missing:
        raise SystemExit(f"cannot run the NAT lab: {missing}")
    env = {"LILYPAD_MUXER": args.muxer}
    runs = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(args.runs):
            runs.append(SCENARIOS[args.scenario](Path(tmp) / str(index), env))
            print(json.dumps(runs[-1]))
    summary = summarise(args.scenario, runs)
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "scenario": args.scenario, "muxer": args.muxer,
              "load_avg_1m": [load_before, os.getloadavg()[0]], "runs": runs,
              "summary": summary}
    print(json.dumps(summary, indent=2))
    name = "nat"
    if args.scenario != "milestones":
        name += f"-{args.scenario}"
    if args.muxer != DEFAULT_MUXER.value:
        name += f"-{args.muxer}"
    (Path(__file__).parent / "results" / f"{name}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
