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
such a child is one that no one would stop otherwise. Should the zygote itself be killed, its
children are too (PR_SET_PDEATHSIG): no node outlives the one process that can report it.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import importlib
import json
import os
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable
from typing import Annotated, Any, NoReturn

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from setproctitle import setproctitle

# What a node imports before it runs: imported here once, shared by every child.
NODE_MODULES = ("lilypad_p2p.cli", "lilypad_p2p.cli_node", "lilypad_p2p.node")
# A request line longer than this is refused (a node's args and environment are a few KiB).
MAX_REQUEST_BYTES = 1 << 20
# How long a child still running when the zygote ends has to stop before it is killed.
STRAY_STOP_S = 5.0
# linux/sched.h, linux/prctl.h
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1


class ForkRequest(BaseModel):
    """One node to fork: `lilypad-p2p *args` with `env`, its output to `log`, in `netns`."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")

    args: list[str]
    env: dict[str, str]
    log: Annotated[str, Field(min_length=1)]
    netns: str | None = None


def parse_request(line: bytes) -> ForkRequest:
    """The request in `line`; ValueError with one line that says what is wrong."""
    try:
        return ForkRequest.model_validate_json(line)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "request"
        raise ValueError(f"{where}: {first['msg']} ({exc.error_count()} errors)") from None


def _checked(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def enter_network_namespace(path: str) -> None:
    """Move this (single-threaded) process into the network namespace at `path`."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _checked(ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET), f"setns {path}")
    finally:
        os.close(fd)


def die_with(parent: int) -> None:
    """SIGKILL this process when `parent` ends (at once, if it already has)."""
    _checked(ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL),
             "prctl PR_SET_PDEATHSIG")
    if os.getppid() != parent:
        os._exit(1)


def _exit_code(exit_: SystemExit) -> int:
    if exit_.code is None:
        return 0
    if isinstance(exit_.code, int):
        return exit_.code
    print(exit_.code, file=sys.stderr)
    return 1


def become_node(request: ForkRequest, zygote: int, run: Callable[[], object]) -> NoReturn:
    """In a fresh child of `zygote`: take the node's log, namespace, environment and argv, run
    it, exit. It dies with the zygote, whose loss would leave no one to report its exit."""
    code = 1
    try:
        die_with(zygote)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        log = os.open(request.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        # As `subprocess` does with close_fds: nothing of the zygote's (its pipes, the other
        # children's pidfds) stays open in a node.
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        if request.netns:
            enter_network_namespace(request.netns)
        sys.argv = ["lilypad-p2p", *request.args]
        # Before the environment changes: the title may take the space of the zygote's.
        setproctitle(" ".join(sys.argv))
        os.environ.clear()
        os.environ.update(request.env)
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
        # A cluster that is gone (killed) hears nothing; the zygote still stops its children.
        with contextlib.suppress(BrokenPipeError):
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
        zygote = os.getpid()
        try:
            request = parse_request(line)
            pid = os.fork()
        except (ValueError, OSError) as exc:
            self.answer({"error": str(exc)})
            return
        if pid == 0:
            become_node(request, zygote, self._run)
        self._children[os.pidfd_open(pid)] = pid
        self.answer({"pid": pid})

    def _reap(self, pidfd: int) -> None:
        pid = self._children.pop(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        self.answer({"exited": pid, "returncode": os.waitstatus_to_exitcode(status)})


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
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
