"""Real NAT: a public relay and two providers, each behind its own MASQUERADE router namespace.

Both providers learn they are private (dial-back), reserve a slot on the relay, see each
other's offers (gossip through the relay), and exchange a stream through a relayed connection.
Whether DCUtR then achieved a direct connection is reported, and asserted: the lab's routers
(Linux MASQUERADE, port-preserving, so endpoint-independent mapping; unsolicited inbound dropped)
let TCP simultaneous open through. Teardown is checked: no namespace or veth of the run remains,
also when the test fails.
"""

from __future__ import annotations

import contextlib

import pytest

from lilypad_p2p.control import ControlError
from lilypad_p2p.localnet import NodeProcess
from lilypad_p2p.testing import require_real
from lilypad_p2p.testing._nat_lab import NODE_PORT, LabError, NatLab, lab_missing

pytestmark = [pytest.mark.net, pytest.mark.slow]

START_TIMEOUT_S = 60.0
DCUTR_TIMEOUT_S = 30.0


def _nat(node: NodeProcess) -> dict:
    return node.call("status")["nat"]


def _owners(node: NodeProcess) -> set[str]:
    return {offer["owner"] for offer in node.call("offers", {"market": "cpu"})}


def _ping(node: NodeProcess, peer_id: str) -> dict | None:
    with contextlib.suppress(ControlError):
        return node.call("nat.ping", {"peer_id": peer_id})
    return None


def test_two_private_providers_meet_through_a_relay(tmp_path, capsys):
    missing = lab_missing()
    if missing:
        require_real("netns", missing)
    lab = NatLab()
    try:
        with lab.running():
            relay = lab.start_node("relay", tmp_path / "relay", ["--relay"])
            relay_status = relay.wait_ready(START_TIMEOUT_S)
            bootstrap = f"/ip4/{lab.relay_ip()}/tcp/{NODE_PORT}/p2p/{relay_status['peer_id']}"
            provider = ["--provider", "--bootstrap", bootstrap]
            # Each holds the other's offer only if it follows the market (a provider by
            # default only publishes into it).
            following = {"LILYPAD_FOLLOW_MARKETS": "true"}
            a = lab.start_node("hosta", tmp_path / "a", provider, env=following)
            b = lab.start_node("hostb", tmp_path / "b", provider, env=following)
            a_status, b_status = a.wait_ready(START_TIMEOUT_S), b.wait_ready(START_TIMEOUT_S)
            wait = lab.wait_until

            wait(lambda: _nat(a)["reachability"] == "private", "a private")
            wait(lambda: _nat(b)["reachability"] == "private", "b private")
            wait(lambda: _nat(relay)["reachability"] == "public", "relay public")
            wait(lambda: _nat(a)["reservations"] and _nat(b)["reservations"], "reservations")
            wait(lambda: b_status["address"] in _owners(a), "a sees b's offer")
            wait(lambda: a_status["address"] in _owners(b), "b sees a's offer")

            pings: list[dict] = []
            wait(lambda: pings.append(_ping(a, b_status["peer_id"])) or pings[-1], "a pings b")
            assert pings[-1]["connection"] == "relayed"
            assert any("/p2p-circuit/" in addr for addr in _nat(b)["circuit_addrs"])

            direct = True
            try:
                wait(
                    lambda: b_status["peer_id"] in _nat(a)["direct_upgraded_peers"]
                    or a_status["peer_id"] in _nat(b)["direct_upgraded_peers"],
                    "DCUtR direct upgrade",
                    timeout_s=DCUTR_TIMEOUT_S,
                )
            except LabError:
                direct = False
            with capsys.disabled():
                print(f"\nNAT lab: relayed ping {pings[-1]['rtt_ms']} ms; DCUtR direct: {direct}")
                print(f"a: {_nat(a)['timeline_s']}\nb: {_nat(b)['timeline_s']}")
            assert direct, "DCUtR did not upgrade through endpoint-independent NATs"
            after = _ping(a, b_status["peer_id"])
            assert after is not None and after["connection"] == "direct"
    finally:
        if lab.nodes:
            for node in lab.nodes:
                print(f"--- {node.name}\n{node.log_tail(15)}")
        assert lab.leftovers() == [], f"teardown left {lab.leftovers()}"

