"""A node that exits while it starts ends the simnet's wait at once, with its own last word in
one line, forked or not (no node runs: the process handles stand in)."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from lilypad_p2p.localnet import ClusterError, NodeProcess
from simnet._run import wait_started


class ForkedLike:
    """Like a forked node's handle: it exits `exits_after_s` from now, with `code`, which
    `poll` and `wait` report as the zygote's exit reports do."""

    pid = 4242
    returncode = None

    def __init__(self, exits_after_s: float, code: int) -> None:
        self._exits_at = time.monotonic() + exits_after_s
        self._code = code

    def poll(self) -> int | None:
        return self._code if time.monotonic() >= self._exits_at else None

    def wait(self, timeout: float | None = None) -> int:
        left = self._exits_at - time.monotonic()
        if timeout is not None and left > timeout:
            time.sleep(timeout)
            raise subprocess.TimeoutExpired("node", timeout)
        time.sleep(max(0.0, left))
        return self._code

    def send_signal(self, sig: int) -> None: ...

    def kill(self) -> None: ...


def _node(tmp_path: Path, process: object) -> NodeProcess:
    log = tmp_path / "node.log"
    log.write_text("starting\nerror: match_timeout_s (config.toml): 0 is out of range\n")
    return NodeProcess("provider-1", tmp_path, process, log)  # type: ignore[arg-type]


def test_a_forked_node_that_exits_ends_the_wait_at_once(tmp_path):
    started = time.monotonic()
    with pytest.raises(ClusterError) as raised:
        wait_started(_node(tmp_path, ForkedLike(0.3, 2)), timeout_s=30)
    assert time.monotonic() - started < 5
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("provider-1 exited with status 2 while starting: error: "
                              "match_timeout_s")


def test_a_spawned_node_that_exits_ends_the_wait_at_once(tmp_path):
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    try:
        with pytest.raises(ClusterError, match="exited with status 3 while starting"):
            wait_started(_node(tmp_path, process), timeout_s=30)
    finally:
        process.wait()


def test_a_node_that_never_answers_is_given_up_on_in_one_line(tmp_path):
    with pytest.raises(ClusterError) as raised:
        wait_started(_node(tmp_path, ForkedLike(60, 0)), timeout_s=0.5)
    assert "did not start within" in str(raised.value) and "\n" not in str(raised.value)
