"""One real `lilypad-p2p node --provider` process per test module, the attackers' target."""

import pytest

from lilypad_p2p.localnet import LocalCluster


@pytest.fixture(scope="module")
def public_node(tmp_path_factory):
    cluster = LocalCluster(tmp_path_factory.mktemp("hostile"))
    with cluster.running():
        node = cluster.start_node("public", roles=["provider"])
        node.wait_ready()
        yield node
        assert node.process.poll() is None, f"the node died:\n{node.log_tail()}"
