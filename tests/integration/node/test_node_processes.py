"""Ten real `lilypad-p2p node` processes on loopback, started through the CLI."""

import pytest

from lilypad_p2p.localnet import ClusterError, LocalCluster

pytestmark = [pytest.mark.net, pytest.mark.slow]

NODES = 10
ALL_OFFERS_WITHIN_S = 10.0
# Well under the 30 s NodeRecord re-publication: a newcomer learns records by offer sync.
RECORDS_WITHIN_S = 10.0
# Providers only publish into their markets unless they follow them: these hold every offer.
FOLLOWING = {"LILYPAD_FOLLOW_MARKETS": "true"}


def offer_owners(node) -> set[str]:
    try:
        return {offer["owner"] for offer in node.call("offers", {"market": "cpu"})}
    except Exception:  # a node busy starting up answers later; the deadline bounds the wait
        return set()


def test_ten_nodes_share_offers_and_survive_the_bootstrap(tmp_path):
    cluster = LocalCluster(tmp_path)
    with cluster.running():
        boot = cluster.start_node("boot", roles=["provider"], env=FOLLOWING)
        boot.wait_ready()
        others = [
            cluster.start_node(f"n{i}", roles=["provider"], bootstrap=[boot.dial_addr],
                               env=FOLLOWING)
            for i in range(1, NODES)
        ]
        for node in others:
            node.wait_ready()
        everyone = [boot, *others]
        addresses = {node.status["address"] for node in everyone}
        assert len(addresses) == NODES

        # Every node's book holds all ten providers' offers within 10 s of the last start.
        cluster.wait_until(
            lambda: all(offer_owners(node) == addresses for node in everyone),
            timeout_s=ALL_OFFERS_WITHIN_S,
            what="every node to hold all 10 offers",
        )

        # Killing the bootstrap must not split the network: a node started afterwards, bootstrapped
        # from a non-bootstrap peer, is still seen by every survivor, and sees all their offers.
        boot.kill()
        survivors = others
        late = cluster.start_node("late", roles=["provider"], bootstrap=[others[-1].dial_addr],
                                  env=FOLLOWING)
        late.wait_ready()
        cluster.wait_until(
            lambda: late.call("status")["known_nodes"] >= len(survivors),
            timeout_s=RECORDS_WITHIN_S,
            what="the late node to learn every survivor's NodeRecord by offer sync",
        )
        expected = {node.status["address"] for node in survivors} | {late.status["address"]}
        try:
            cluster.wait_until(
                lambda: all(expected <= offer_owners(node) for node in [*survivors, late]),
                timeout_s=30.0,
                what="survivors and the late node to share offers after the bootstrap died",
            )
        except ClusterError:
            for node in [*survivors, late]:
                print(node.name, len(offer_owners(node)), node.log_tail(5))
            raise

    for node in cluster.nodes:
        if node is not boot:
            assert node.process.returncode == 0, f"{node.name} did not exit cleanly on SIGINT"
