"""Nodes forked from one zygote (`LocalCluster(forked=True)`, what the simnet runs): real node
processes of their own, sharing the imported libraries' memory; and the zygote itself, spoken to
as a caller that gets its protocol wrong would."""

import json
import os
import select
import signal
import subprocess
import sys
import time

import psutil
import pytest

from lilypad_p2p.localnet import LocalCluster

pytestmark = [pytest.mark.net, pytest.mark.slow]

FOLLOWING = {"LILYPAD_FOLLOW_MARKETS": "true"}
OFFERS_WITHIN_S = 15.0
ANSWER_WITHIN_S = 60.0  # the zygote's imports come first
# A forked node shares its imports with the zygote and its siblings: its proportional share of
# memory is well under what RSS counts. A spawned node's PSS is about 0.75 of its RSS (only
# the shared libraries' pages are shared); a forked one's, measured, about 0.4.
FORKED_PSS_OVER_RSS_AT_MOST = 0.6


def offer_owners(node) -> set[str]:
    try:
        return {offer["owner"] for offer in node.call("offers", {"market": "cpu"})}
    except Exception:  # a node busy starting up answers later; the deadline bounds the wait
        return set()


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
            timeout_s=OFFERS_WITHIN_S, what="the followers to hold all three offers")
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
        assert [node.stop() for node in (boot, follower, late)] == [0, 0, 0]
    assert not zygote.is_running(), "the zygote outlived its cluster"


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
    zygote = subprocess.Popen([sys.executable, "-m", "lilypad_p2p.zygote",
                               str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
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
        zygote.stdin.write(b"\n".join(lines) + b"\n")
        zygote.stdin.flush()
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
