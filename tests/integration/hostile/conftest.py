"""One real `lilypad-p2p node --provider` process per test module, the attackers' target. It
follows its market (`follow_markets`), as clients and solvers do, so the attacks on the market
topic reach it: a provider that only publishes into the market never receives that topic."""

import pytest

from lilypad_p2p.localnet import LocalCluster


@pytest.fixture(scope="module")
def public_node(tmp_path_factory):
    cluster = LocalCluster(tmp_path_factory.mktemp("hostile"))
    with cluster.running():
        node = cluster.start_node("public", roles=["provider"],
                                  env={"LILYPAD_FOLLOW_MARKETS": "true"})
        node.wait_ready()
        yield node
        assert node.process.poll() is None, f"the node died:\n{node.log_tail()}"
