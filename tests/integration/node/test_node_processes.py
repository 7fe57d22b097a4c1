"""Real `lilypad-p2p node` processes on loopback: ten started through the CLI; nodes forked from
one zygote (`LocalCluster(forked=True)`, what the simnet runs), processes of their own that
share the imported libraries' memory; and the zygote itself, spoken to as a caller that gets its
protocol wrong would."""

import json
import os
import select
import signal
import subprocess
import sys
import time

import psutil
import pytest

from lilypad_p2p.control import ControlError
from lilypad_p2p.localnet import ClusterError, LocalCluster, cluster_processes_under

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
        for method in ("offers", "market"):  # a mistyped market is not an empty one
            with pytest.raises(ControlError, match="not in market 'cpx'; its markets: cpu"):
                boot.call(method, {"market": "cpx"})

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


ANSWER_WITHIN_S = 60.0  # the zygote's imports come first
# A forked node shares its imports with the zygote and its siblings: its proportional share of
# memory is well under what RSS counts. A spawned node's PSS is about 0.75 of its RSS (only
# the shared libraries' pages are shared); a forked one's, measured, about 0.4.
FORKED_PSS_OVER_RSS_AT_MOST = 0.6


def test_forked_nodes_are_processes_of_their_own_that_share_their_imports(tmp_path):
    cluster = LocalCluster(tmp_path, forked=True)
    with cluster.running():
        boot = cluster.start_node("boot", roles=["provider"], env=FOLLOWING)
        boot.wait_ready()
        follower = cluster.start_node("follower", roles=["provider"],
                                      bootstrap=[boot.dial_addr], env=FOLLOWING)
        quiet = cluster.start_node("quiet", roles=["provider"], bootstrap=[boot.dial_addr])
        everyone = [boot, follower, quiet]
        for node in everyone:
            node.wait_ready()
        assert len({node.process.pid for node in everyone}) == 3
        assert len({node.status["address"] for node in everyone}) == 3
        zygote = psutil.Process(boot.process.pid).parent()
        assert zygote is not None and "lilypad_p2p.zygote" in zygote.cmdline()
        for node in everyone:
            cmdline = psutil.Process(node.process.pid).cmdline()
            assert cmdline[:4] == ["lilypad-p2p", "node", "--home", str(node.home)]
            assert psutil.Process(node.process.pid).parent() == zygote

        # Each node reads its own environment: the two that follow the market hold every
        # offer, the one that does not holds only its own.
        addresses = {node.status["address"] for node in everyone}
        cluster.wait_until(
            lambda: offer_owners(boot) == addresses == offer_owners(follower),
            timeout_s=ALL_OFFERS_WITHIN_S, what="the followers to hold all three offers")
        assert offer_owners(quiet) == {quiet.status["address"]}

        for node in everyone:
            memory = psutil.Process(node.process.pid).memory_full_info()
            assert memory.pss < FORKED_PSS_OVER_RSS_AT_MOST * memory.rss, (node.name, memory)
        assert all(node.log_path.stat().st_size > 0 for node in everyone)

        # Ctrl-C reaches a terminal's whole process group; the zygote ignores it and forks on.
        os.kill(zygote.pid, signal.SIGINT)
        late = cluster.start_node("late", bootstrap=[boot.dial_addr])
        late.wait_ready()

        quiet.process.kill()
        assert quiet.process.wait(10) == -signal.SIGKILL
        assert [node.stop() for node in (boot, follower)] == [0, 0]
        # One the cluster lost track of (as a fork interrupted by Ctrl-C would be): the zygote
        # stops it as it ends, and its exit is still known.
        cluster.nodes.remove(late)
    assert not zygote.is_running(), "the zygote outlived its cluster"
    assert late.process.poll() == 0


def _answers(zygote: subprocess.Popen[bytes], count: int) -> list[dict]:
    """The next `count` answer lines from `zygote`."""
    assert zygote.stdout is not None
    answers = []
    deadline = time.monotonic() + ANSWER_WITHIN_S
    while len(answers) < count:
        assert select.select([zygote.stdout], [], [], deadline - time.monotonic())[0], answers
        answers.append(json.loads(zygote.stdout.readline()))
    return answers


def test_the_zygote_refuses_what_it_cannot_fork_and_forks_on(tmp_path):
    # Unbuffered: a buffered readline could take in two answers while `select` waits for one.
    zygote = subprocess.Popen([sys.executable, "-m", "lilypad_p2p.zygote", str(tmp_path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    assert zygote.stdin is not None
    try:
        assert _answers(zygote, 1) == [{"ready": True}]
        log = tmp_path / "help.log"
        lines = [b"not json", b"[1, 2]", json.dumps({"args": "node", "env": {}}).encode(),
                 json.dumps({"args": [], "env": {"A": 1}, "log": str(log)}).encode(),
                 json.dumps({"args": [], "env": {}, "log": ""}).encode(),
                 b"x" * (2 << 20),
                 json.dumps({"args": ["--help"], "env": {"PATH": os.environ["PATH"]},
                             "log": str(log), "netns": None}).encode()]
        data = b"\n".join(lines) + b"\n"
        assert zygote.stdin.write(data) == len(data)
        refused = _answers(zygote, 6)
        assert all(set(answer) == {"error"} for answer in refused), refused
        assert "longer than" in refused[-1]["error"]
        started, exited = _answers(zygote, 2)
        assert exited == {"exited": started["pid"], "returncode": 0}
        assert "Usage: lilypad-p2p" in log.read_text()
        assert oct(log.stat().st_mode & 0o777) == "0o600"
        zygote.stdin.close()
        assert zygote.wait(10) == 0
    finally:
        zygote.kill()
        zygote.wait()


def test_nodes_die_with_their_zygote_and_say_so(tmp_path):
    cluster = LocalCluster(tmp_path, forked=True)
    with cluster.running():
        node = cluster.start_node("node")
        node.wait_ready()
        zygote = psutil.Process(node.process.pid).parent()
        assert zygote is not None
        zygote.kill()
        assert node.process.wait(10) == -signal.SIGKILL
        cluster.wait_until(lambda: _ended(node.process.pid), timeout_s=10,
                           what="the node to die with its zygote")
        assert cluster_processes_under(tmp_path) == []


def _ended(pid: int) -> bool:
    """Gone, or a zombie that whoever inherited it has not reaped yet."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


OWNER = """
import sys, time
from pathlib import Path
from lilypad_p2p.localnet import LocalCluster
cluster = LocalCluster(Path(sys.argv[1]), forked=True)
node = cluster.start_node("node")
node.wait_ready()
print(node.process.pid, flush=True)
time.sleep(600)
"""


def test_a_killed_cluster_owner_leaves_no_forked_node_behind(tmp_path):
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(tmp_path)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None
        node_pid = int(owner.stdout.readline())
        assert psutil.pid_exists(node_pid)
        owner.kill()
        owner.wait()
        # The zygote reads the end of its requests, stops the node (SIGINT) and ends.
        deadline = time.monotonic() + 15
        while cluster_processes_under(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not cluster_processes_under(tmp_path), "a node or zygote outlived its owner"
        assert _ended(node_pid)
        assert "node.stopped" in (tmp_path / "node" / "node.log").read_text()
    finally:
        owner.kill()
        owner.wait()
