"""One node per home, with real processes: a second node is refused at once, in one line
naming the running node's PID, before it touches anything in the home."""

import os
import signal
import subprocess
import sys
import time

import pytest

from lilypad_p2p.localnet import LocalCluster

pytestmark = [pytest.mark.net, pytest.mark.slow]
REFUSED_WITHIN_S = 30


def _node_cmd(home):
    return [sys.executable, "-m", "lilypad_p2p.cli", "node", "--home", str(home),
            "--listen", "/ip4/127.0.0.1/tcp/0"]


def _env():
    return {k: v for k, v in os.environ.items() if not k.startswith("LILYPAD_")}


def test_second_node_is_refused_naming_the_first_pid(tmp_path):
    cluster = LocalCluster(tmp_path)
    with cluster.running():
        first = cluster.start_node("n")
        first.wait_ready()
        token = (first.home / "control.token").read_text()
        second = subprocess.run(_node_cmd(first.home), env=_env(), capture_output=True,
                                text=True, timeout=REFUSED_WITHIN_S)
        assert second.returncode == 2
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert f"PID {first.process.pid}" in lines[0] and "another --home" in lines[0]
        # The first node is untouched: same socket, same token, still answering.
        assert (first.home / "control.token").read_text() == token
        assert first.call("status")["address"] == first.status["address"]
        assert first.stop() == 0, first.log_tail()


def test_two_nodes_started_at_once_exactly_one_runs(tmp_path):
    home = tmp_path / "shared"
    for attempt in range(3):
        procs = [subprocess.Popen(_node_cmd(home), env=_env(), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        try:
            deadline = time.monotonic() + REFUSED_WITHIN_S
            while all(p.poll() is None for p in procs) and time.monotonic() < deadline:
                time.sleep(0.1)
            refused = [p for p in procs if p.poll() is not None]
            running = [p for p in procs if p.poll() is None]
            assert len(refused) == 1 and len(running) == 1, f"attempt {attempt}"
            err = refused[0].stderr.read()
            assert refused[0].returncode == 2
            assert f"PID {running[0].pid}" in err and len(err.strip().splitlines()) == 1, err
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(2)
                    p.wait(30)
        assert running[0].returncode == 0


def test_a_hangup_stops_the_node_cleanly_and_frees_its_home(tmp_path):
    # A closed terminal or a dropped ssh session sends SIGHUP: the node stops as on Ctrl-C.
    cluster = LocalCluster(tmp_path)
    with cluster.running():
        node = cluster.start_node("n")
        node.wait_ready()
        node.process.send_signal(signal.SIGHUP)
        assert node.stop(signalled=True) == 0, node.log_tail()
        assert '"signal":"SIGHUP"' in node.log_path.read_text()
        assert not (node.home / "control.sock").exists()
