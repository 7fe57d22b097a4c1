"""Losing a relay moves a private node's reservation to another, and relayed streams resume.

Two public relays; A and B each behind a symmetric NAT (no hole punching, so everything between
them is relayed). A keeps one reservation (`relay_reservations = 1`). B pings A through it;
then the relay holding A's reservation is killed. A must reserve on the other relay within
`RelayPlan`'s bound (one relay tick to notice the lost connection, one reservation attempt),
advertise only the new circuit address, and B's ping must get through again over it.
"""

from __future__ import annotations

import time

import pytest

from lilypad_p2p.control import ControlError
from lilypad_p2p.localnet import NodeProcess
from lilypad_p2p.net._nat import RELAY_TICK_S, RESERVATION_TIMEOUT_S
from lilypad_p2p.testing import require_real
from lilypad_p2p.testing._nat_lab import NatLab, lab_missing

pytestmark = [pytest.mark.net, pytest.mark.slow]

START_TIMEOUT_S = 60.0
# RelayPlan's bound: a tick notices the relay's connection is gone, the next reserves elsewhere.
MOVE_BOUND_S = 2 * RELAY_TICK_S + RESERVATION_TIMEOUT_S


def _nat(node: NodeProcess) -> dict:
    return node.call("status")["nat"]


def _relays_of(node: NodeProcess) -> list[str]:
    return [r["relay"] for r in _nat(node)["reservations"]]


def _relayed_ping(asker: NodeProcess, peer_id: str, addrs: list[str]) -> bool:
    try:
        answer = asker.call("nat.ping", {"peer_id": peer_id, "addrs": addrs})
    except ControlError:
        return False
    return answer["connection"] == "relayed"


def test_a_private_node_moves_to_the_other_relay_when_its_relay_dies(tmp_path, capsys):
    missing = lab_missing()
    if missing:
        require_real("netns", missing)
    lab = NatLab(relays=2, symmetric=True)
    try:
        with lab.running():
            relays: dict[str, NodeProcess] = {}
            bootstrap: list[str] = []
            for index, role in enumerate(lab.relay_roles):
                node = lab.start_node(role, tmp_path / role, ["--relay"])
                peer = node.wait_ready(START_TIMEOUT_S)["peer_id"]
                relays[peer] = node
                bootstrap += ["--bootstrap", lab.relay_multiaddr(peer, index)]
            a = lab.start_node("hosta", tmp_path / "a", bootstrap,
                               env={"LILYPAD_RELAY_RESERVATIONS": "1"})
            b = lab.start_node("hostb", tmp_path / "b", bootstrap)
            a_peer = a.wait_ready(START_TIMEOUT_S)["peer_id"]
            b.wait_ready(START_TIMEOUT_S)
            lab.wait_until(lambda: len(_relays_of(a)) == 1, "A's reservation")
            lab.wait_until(lambda: _nat(b)["reachability"] == "private", "B private")
            first = _relays_of(a)[0]
            lab.wait_until(lambda: _relayed_ping(b, a_peer, _nat(a)["circuit_addrs"]),
                           "B pings A through the first relay")

            relays[first].kill()
            killed_at = time.monotonic()
            lab.nodes.remove(relays[first])  # its exit is intended: wait_until must not fail
            # One status per look: the reservation list can empty between two reads.
            lab.wait_until(lambda: _relays_of(a)[:1] not in ([], [first]),
                           "A's reservation on the other relay", timeout_s=MOVE_BOUND_S)
            moved_after_s = time.monotonic() - killed_at
            second = _relays_of(a)[0]
            circuits = _nat(a)["circuit_addrs"]
            assert circuits and all(f"/p2p/{second}/p2p-circuit/" in addr for addr in circuits)
            lab.wait_until(lambda: _relayed_ping(b, a_peer, circuits),
                           "B pings A through the second relay")
            with capsys.disabled():
                print(f"\nrelay failover: A reserved on the other relay {moved_after_s:.2f} s "
                      f"after its relay was killed (bound {MOVE_BOUND_S} s)")
    finally:
        for node in lab.nodes:
            print(f"--- {node.name}\n{node.log_tail(15)}")
        assert lab.leftovers() == [], f"teardown left {lab.leftovers()}"
