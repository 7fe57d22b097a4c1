"""The zygote: one process that imports the node once and forks every node of a cluster.

A node process spends about 1.5 CPU-seconds and 90 MB of private memory importing py-libp2p,
web3 and the Docker SDK before it runs a line of its own. Forked from a process that already
holds them, a node starts at once and shares those pages copy-on-write with the zygote and
every other node (`gc.freeze` keeps the collector from writing to them). A forked node is
still its own process: its own pid, signals, log, environment, network namespace and exit
status, running `lilypad-p2p` exactly as `python -m lilypad_p2p.cli` would; its command line
(`ps`, /proc/PID/cmdline) reads `lilypad-p2p node --home ...`.

    python -m lilypad_p2p.zygote BASE_DIR

(BASE_DIR, the cluster's, only tells zygotes apart in `ps`.)

Protocol, one JSON object per line. On stdin, one request per node to fork:
`{"args": [...], "env": {...}, "log": path, "netns": path or null}` (`args` as after
`lilypad-p2p`; `netns` a network namespace file such as /run/netns/NAME to enter). On stdout,
`{"ready": true}` once the imports are done; per request `{"pid": n}` or `{"error": line}`;
and `{"exited": pid, "returncode": rc}` when a child ends (rc as `subprocess` gives it:
negative for a signal). The zygote ignores SIGINT (a Ctrl-C meant for the nodes must not take
their exit statuses with it) and ends when its stdin closes, stopping any child still running
(SIGINT, then SIGKILL after `STRAY_STOP_S`): its cluster has stopped every node it knows of, so
such a child is one that no one would stop otherwise.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import json
import os
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

from setproctitle import setproctitle

# What a node imports before it runs: imported here once, shared by every child.
NODE_MODULES = ("lilypad_p2p.cli", "lilypad_p2p.cli_node", "lilypad_p2p.node")
# A request line longer than this is refused (a node's args and environment are a few KiB).
MAX_REQUEST_BYTES = 1 << 20
# How long a child still running when the zygote ends has to stop before it is killed.
STRAY_STOP_S = 5.0
# linux/sched.h
CLONE_NEWNET = 0x40000000


class ZygoteRequestError(ValueError):
    """A request line the zygote cannot act on."""


def parse_request(line: bytes) -> dict[str, Any]:
    """The checked request in `line`, or ZygoteRequestError with what is wrong."""
    try:
        request = json.loads(line)
    except ValueError as exc:
        raise ZygoteRequestError(f"not JSON: {exc}") from None
    if not isinstance(request, dict):
        raise ZygoteRequestError("a request is a JSON object")
    args, env = request.get("args"), request.get("env")
    log, netns = request.get("log"), request.get("netns")
    if not (isinstance(args, list) and all(isinstance(a, str) for a in args)):
        raise ZygoteRequestError("args must be a list of strings")
    if not (isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str)
                                          for k, v in env.items())):
        raise ZygoteRequestError("env must map strings to strings")
    if not isinstance(log, str) or not log:
        raise ZygoteRequestError("log must be a file path")
    if netns is not None and not isinstance(netns, str):
        raise ZygoteRequestError("netns must be a path or null")
    return {"args": args, "env": env, "log": log, "netns": netns}


def enter_network_namespace(path: str) -> None:
    """Move this (single-threaded) process into the network namespace at `path`."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns {path}: {os.strerror(errno)}")
    finally:
        os.close(fd)


def _exit_code(exit_: SystemExit) -> int:
    if exit_.code is None:
        return 0
    if isinstance(exit_.code, int):
        return exit_.code
    print(exit_.code, file=sys.stderr)
    return 1


def become_node(request: dict[str, Any], run: Callable[[], object]) -> NoReturn:
    """In a fresh child: take the node's log, namespace, environment and argv, run it, exit."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        # As `subprocess` does with close_fds: nothing of the zygote's (its pipes, the other
        # children's pidfds) stays open in a node.
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        if request["netns"]:
            enter_network_namespace(request["netns"])
        sys.argv = ["lilypad-p2p", *request["args"]]
        # Before the environment changes: the title may take the space of the zygote's.
        setproctitle(" ".join(sys.argv))
        os.environ.clear()
        os.environ.update(request["env"])
        run()
        code = 0
    except SystemExit as exit_:
        code = _exit_code(exit_)
    except BaseException:  # the child reports anything, then exits
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


class Zygote:
    """The serving loop: forks on request, reports each child's exit."""

    def __init__(self, requests_fd: int, answers_fd: int, run: Callable[[], object]) -> None:
        self._requests_fd = requests_fd
        self._answers_fd = answers_fd
        self._run = run
        self._children: dict[int, int] = {}  # pidfd -> pid
        self._pending = b""
        self._skipping = False

    def answer(self, message: dict[str, Any]) -> None:
        data = (json.dumps(message) + "\n").encode()
        while data:
            data = data[os.write(self._answers_fd, data):]

    def serve(self) -> None:
        """Until stdin closes; then stop the children still running."""
        while True:
            readable, _, _ = select.select([self._requests_fd, *self._children], [], [])
            for fd in readable:
                if fd != self._requests_fd:
                    self._reap(fd)
                elif not self._read_requests():
                    self._stop_children()
                    return

    def _stop_children(self) -> None:
        for pid in self._children.values():
            os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + STRAY_STOP_S
        while self._children and (remaining := deadline - time.monotonic()) > 0:
            for pidfd in select.select(list(self._children), [], [], remaining)[0]:
                self._reap(pidfd)
        for pid in self._children.values():
            os.kill(pid, signal.SIGKILL)
        for pidfd in list(self._children):
            self._reap(pidfd)

    def _read_requests(self) -> bool:
        chunk = os.read(self._requests_fd, 65536)
        if not chunk:
            return False
        if self._skipping:  # the rest of an overlong line
            _, newline, chunk = chunk.partition(b"\n")
            self._skipping = not newline
        self._pending += chunk
        while b"\n" in self._pending:
            line, self._pending = self._pending.split(b"\n", 1)
            self._fork(line)
        if len(self._pending) > MAX_REQUEST_BYTES:
            self._pending, self._skipping = b"", True
            self.answer({"error": f"request longer than {MAX_REQUEST_BYTES} bytes"})
        return True

    def _fork(self, line: bytes) -> None:
        try:
            request = parse_request(line)
            pid = os.fork()
        except (ZygoteRequestError, OSError) as exc:
            self.answer({"error": str(exc)})
            return
        if pid == 0:
            become_node(request, self._run)
        self._children[os.pidfd_open(pid)] = pid
        self.answer({"pid": pid})

    def _reap(self, pidfd: int) -> None:
        pid = self._children.pop(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        self.answer({"exited": pid, "returncode": os.waitstatus_to_exitcode(status)})


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import importlib

    for name in NODE_MODULES:
        importlib.import_module(name)
    from lilypad_p2p.cli import app

    gc.collect()
    gc.freeze()
    zygote = Zygote(sys.stdin.fileno(), sys.stdout.fileno(),
                    functools.partial(app, prog_name="lilypad-p2p"))
    zygote.answer({"ready": True})
    zygote.serve()


if __name__ == "__main__":
    main()
