"""The cluster's side of the zygote (`python -m lilypad_p2p.zygote`): start it, ask it for
nodes, and handle each forked node as `subprocess.Popen` handles a process (`poll`, `wait`,
`send_signal`, `kill`, `returncode`), so a cluster treats forked and spawned nodes alike."""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# How long the zygote may take to import the node (what one node's start-up took before).
ZYGOTE_START_TIMEOUT_S = 60.0
# How long the zygote may take to answer a fork request.
FORK_TIMEOUT_S = 10.0
# How long the zygote may take to exit once its stdin is closed (it gives any node still
# running 5 s to stop).
ZYGOTE_STOP_TIMEOUT_S = 10.0


class ZygoteError(RuntimeError):
    """The zygote did not start, or did not fork a node."""


class Zygote:
    """A running zygote process; thread-safe."""

    def __init__(self, base_dir: Path, env: Mapping[str, str]) -> None:
        log_path = base_dir / "zygote.log"
        with log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "lilypad_p2p.zygote", str(base_dir)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=dict(env))
        assert self._process.stdin is not None and self._process.stdout is not None
        self._requests = self._process.stdin
        self._answers_fd = self._process.stdout.fileno()
        self._log_path = log_path
        self._pending = b""
        self._exits: dict[int, int] = {}
        self._gone = False
        self._lock = threading.Lock()
        try:
            with self._lock:
                ready = self._next_answer(time.monotonic() + ZYGOTE_START_TIMEOUT_S)
            if not ready.get("ready"):
                raise ZygoteError(f"the zygote did not start: {ready}; see {log_path}")
        except BaseException:  # Ctrl-C included: no one else would stop it
            self._process.kill()
            self._process.wait()
            raise

    @property
    def pid(self) -> int:
        return self._process.pid

    def fork(self, args: Sequence[str], env: Mapping[str, str], log_path: Path,
             netns: Path | None = None) -> ForkedProcess:
        """A node running `lilypad-p2p *args` with `env`, writing to `log_path`."""
        request = {"args": list(args), "env": dict(env), "log": str(log_path),
                   "netns": str(netns) if netns else None}
        with self._lock:
            try:
                self._requests.write((json.dumps(request) + "\n").encode())
                self._requests.flush()
            except OSError as exc:
                raise ZygoteError(f"the zygote is gone ({exc}); see {self._log_path}") from None
            answer = self._next_answer(time.monotonic() + FORK_TIMEOUT_S)
        if "pid" not in answer:
            raise ZygoteError(f"the zygote did not fork {args}: {answer.get('error', answer)}")
        return ForkedProcess(self, int(answer["pid"]), list(args))

    def exit_status(self, pid: int, timeout_s: float) -> int | None:
        """`pid`'s return code once the zygote has reported it, waiting up to `timeout_s`.

        A zygote that is gone took its children with it (they die with it): -SIGKILL."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while pid not in self._exits and not self._gone:
                if self._next_line(deadline) is None:
                    break
            if self._gone:
                return self._exits.get(pid, -signal.SIGKILL)
            return self._exits.get(pid)

    def close(self) -> None:
        """End the zygote; it stops any node still running, and their exits are kept."""
        with contextlib.suppress(OSError):
            self._requests.close()
        deadline = time.monotonic() + ZYGOTE_STOP_TIMEOUT_S
        with self._lock:
            while self._next_line(deadline) is not None:  # its last exit reports, to EOF
                pass
            self._gone = True
        try:
            self._process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process.stdout.close()  # type: ignore[union-attr]

    def _next_answer(self, deadline: float) -> dict[str, Any]:
        """The next answer that is not an exit report (those are kept), or an error."""
        while True:
            line = self._next_line(deadline)
            if line is None:
                raise ZygoteError(f"the zygote did not answer; see {self._log_path}")
            if "exited" not in line:
                return line

    def _next_line(self, deadline: float) -> dict[str, Any] | None:
        while b"\n" not in self._pending:
            # A deadline already past still reads what the zygote has sent: `poll` asks with
            # a timeout of 0 and must see an exit reported before it asked.
            remaining = max(0.0, deadline - time.monotonic())
            wait = None if math.isinf(remaining) else remaining
            if not select.select([self._answers_fd], [], [], wait)[0]:
                return None
            chunk = os.read(self._answers_fd, 65536)
            if not chunk:
                self._gone = True
                return None
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        message: dict[str, Any] = json.loads(line)
        if "exited" in message:
            self._exits[int(message["exited"])] = int(message["returncode"])
        return message


class ForkedProcess:
    """A node forked by the zygote, with the part of `subprocess.Popen` a cluster uses."""

    def __init__(self, zygote: Zygote, pid: int, args: list[str]) -> None:
        self._zygote = zygote
        self.pid = pid
        self.args = args
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._zygote.exit_status(self.pid, 0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            limit = float("inf") if timeout is None else timeout
            self.returncode = self._zygote.exit_status(self.pid, limit)
            if self.returncode is None:
                raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        # The zygote reaps its children, so a pid is only safe to signal while no exit has
        # been reported for it.
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)
