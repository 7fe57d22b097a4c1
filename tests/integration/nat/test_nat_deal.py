"""A whole deal between a client and a provider, each behind its own NAT, through the relay.

The NAT routers are symmetric (`NatLab(symmetric=True)`: a random port per connection), so
DCUtR cannot punch a hole and every deal stream - proposal, job request, result, acceptance -
travels the relayed connection; the test asserts it stayed relayed. The job runs in Docker (the
provider reaches dockerd through its socket file from its namespace) and the deal settles on an
anvil in the root namespace, which the private nodes reach through their NAT and the lab's
uplink like any public host. Teardown is checked: no namespace, veth or rule remains.
"""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import pytest

from lilypad_p2p.localnet import MarketWorld, NodeProcess, market_world
from lilypad_p2p.testing import require_anvil, require_docker, require_real
from lilypad_p2p.testing._nat_lab import NatLab, lab_missing

pytestmark = [pytest.mark.net, pytest.mark.chain, pytest.mark.docker, pytest.mark.slow]

START_TIMEOUT_S = 60.0
SETTLED_TIMEOUT_S = 120.0
FINAL_PHASES = {"settled", "rejected", "cancelled", "timed_out"}
JOB_TEXT = "a job behind two NATs"


def _require_parts() -> None:
    missing = lab_missing()
    if missing:
        require_real("netns", missing)
    require_anvil()
    require_docker("the provider runs the job in Docker")


def _nat(node: NodeProcess) -> dict:
    return node.call("status")["nat"]


def _digest_in(result_path: str) -> str:
    with tarfile.open(result_path) as archive:
        member = archive.extractfile("digest.txt")
        assert member is not None
        return member.read().decode().strip()


def test_a_deal_between_two_private_nodes_settles_through_the_relay(tmp_path, capsys):
    _require_parts()
    lab = NatLab(symmetric=True, uplink=True)
    try:
        with lab.running(), market_world(tmp_path, anvil_host=lab.uplink_ip()) as world:
            try:
                _settle_one_deal(lab, world, tmp_path, capsys)
            finally:
                lab.stop_nodes()  # before anvil goes: nodes must not outlive their chain
    finally:
        for node in lab.nodes:
            print(f"--- {node.name}\n{node.log_tail(15)}")
        assert lab.leftovers() == [], f"teardown left {lab.leftovers()}"


def _settle_one_deal(lab: NatLab, world: MarketWorld, base: Path, capsys) -> None:
    relay = lab.start_node("relay", base / "relay", ["--relay"])
    relay_peer = relay.wait_ready(START_TIMEOUT_S)["peer_id"]
    bootstrap = ["--bootstrap", lab.relay_multiaddr(relay_peer)]
    world.prepare_home("provider")
    world.prepare_home("client")
    provider = lab.start_node("hosta", base / "provider", ["--provider", *bootstrap])
    client = lab.start_node("hostb", base / "client", ["--client", *bootstrap])
    provider_status = provider.wait_ready(START_TIMEOUT_S)
    client.wait_ready(START_TIMEOUT_S)
    lab.wait_until(lambda: _nat(provider)["reservations"], "the provider's reservation")
    lab.wait_until(lambda: _nat(client)["reachability"] == "private", "the client private")
    world.wait_until_known(client, [provider])
    target = provider_status["address"]
    before = world.balance(target)

    key = client.call("submit", {"module": "hash", "params": {"text": JOB_TEXT},
                                 "target": target})["key"]
    deal = world.wait_for_phase(client, key, FINAL_PHASES, timeout_s=SETTLED_TIMEOUT_S)

    assert deal["phase"] == "settled", deal
    assert _digest_in(deal["result_path"]) == hashlib.sha256(JOB_TEXT.encode()).hexdigest()
    assert world.balance(target) - before == deal["payment_wei"] > 0
    client_nat = _nat(client)
    relayed = provider_status["peer_id"] in client_nat["relayed_peers"]
    with capsys.disabled():
        print(f"\nNAT deal settled; client-provider connection relayed: {relayed}, "
              f"direct upgrades: {client_nat['direct_upgraded_peers']}")
    assert relayed
    assert client_nat["direct_upgraded_peers"] == []
