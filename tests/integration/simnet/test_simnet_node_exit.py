"""A real node, forked from a real zygote, that exits while starting (a config it refuses):
the simnet's wait ends with the node's error at once, not after its readiness timeout, and
the cluster's own wait sees the exit as soon (a forked node's `poll` reads the zygote's exit
reports)."""

import time
from pathlib import Path

import pytest

from lilypad_p2p.localnet import ClusterError, LocalCluster
from simnet._run import wait_started

pytestmark = [pytest.mark.slow]

# Well under the start timeout the wait is given: the zygote imports the node, then the node
# reads its config and exits.
EXIT_SEEN_WITHIN_S = 30.0


def _config_it_refuses(home: Path) -> None:
    home.mkdir()
    (home / "config.toml").write_text("match_timeout_s = 0\n")


@pytest.mark.parametrize("forked", [True, False], ids=["forked", "spawned"])
def test_a_node_that_exits_while_starting_ends_the_wait_with_its_error(tmp_path, forked):
    _config_it_refuses(tmp_path / "provider-1")
    cluster = LocalCluster(tmp_path, forked=forked)
    with cluster.running():
        node = cluster.start_node("provider-1", roles=["provider"])
        started = time.monotonic()
        with pytest.raises(ClusterError) as raised:
            wait_started(node, timeout_s=120)
        assert time.monotonic() - started < EXIT_SEEN_WITHIN_S
    message = str(raised.value)
    assert "\n" not in message and "exited with status 2 while starting" in message
    assert "match_timeout_s" in message


def test_a_forked_nodes_poll_sees_its_exit_without_waiting(tmp_path):
    _config_it_refuses(tmp_path / "provider-1")
    cluster = LocalCluster(tmp_path, forked=True)
    with cluster.running():
        node = cluster.start_node("provider-1", roles=["provider"])
        started = time.monotonic()
        with pytest.raises(ClusterError, match="exited with 2"):
            node.wait_ready(timeout_s=120)
        assert time.monotonic() - started < EXIT_SEEN_WITHIN_S
