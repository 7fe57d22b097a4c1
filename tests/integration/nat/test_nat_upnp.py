"""UPnP behind its flag: a node whose router runs miniupnpd maps its port and becomes public.

`NatLab(upnp=True)` runs miniupnpd (nftables backend) on router A. Node A starts with
`upnp = true` (`LILYPAD_UPNP=1`): py-libp2p asks the router (miniupnpc) to forward its listen
port; the relay's dial-back then reaches A through the mapping, so A learns it is public, and B,
itself private behind its own NAT, dials A directly at its router's address. B, without a
mapping, stays private: the mapping is what made the difference.
"""

from __future__ import annotations

import pytest

from lilypad_p2p.localnet import NodeProcess
from lilypad_p2p.testing import require_real
from lilypad_p2p.testing._nat_lab import NODE_PORT, NatLab, lab_missing, upnp_missing

pytestmark = [pytest.mark.net, pytest.mark.slow]

START_TIMEOUT_S = 60.0


def _nat(node: NodeProcess) -> dict:
    return node.call("status")["nat"]


def test_a_node_with_the_upnp_flag_gets_a_mapping_and_is_reachable(tmp_path):
    missing = lab_missing() or upnp_missing()
    if missing:
        require_real("upnp", missing)
    lab = NatLab(upnp=True)
    try:
        with lab.running():
            relay = lab.start_node("relay", tmp_path / "relay", ["--relay"])
            bootstrap = ["--bootstrap", lab.relay_multiaddr(relay.wait_ready()["peer_id"])]
            a = lab.start_node("hosta", tmp_path / "a", bootstrap, env={"LILYPAD_UPNP": "1"})
            b = lab.start_node("hostb", tmp_path / "b", bootstrap)
            a_peer = a.wait_ready(START_TIMEOUT_S)["peer_id"]
            b.wait_ready(START_TIMEOUT_S)

            lab.wait_until(lambda: f"dport {NODE_PORT} dnat" in lab.upnp_mappings(),
                           "router A's port mapping for A")
            lab.wait_until(lambda: _nat(a)["reachability"] == "public", "A public")
            lab.wait_until(lambda: _nat(b)["reachability"] == "private", "B private")
            assert _nat(a)["reservations"] == []  # public nodes need no relay
            mapped = f"/ip4/{lab.router_a_ip()}/tcp/{NODE_PORT}"
            answer = b.call("nat.ping", {"peer_id": a_peer, "addrs": [mapped]})
            assert answer["connection"] == "direct"
    finally:
        for node in lab.nodes:
            print(f"--- {node.name}\n{node.log_tail(15)}")
        print(f"--- miniupnpd\n{lab.upnpd_log()[-2000:]}")
        assert lab.leftovers() == [], f"teardown left {lab.leftovers()}"
