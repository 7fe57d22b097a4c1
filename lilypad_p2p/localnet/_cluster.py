"""Real `lilypad-p2p node` processes on this machine, for the simnet, the demo,
the devnet, tests and benchmarks.

Each node gets its own home directory (keys, control socket, database) under one base
directory and listens on a free loopback port. Readiness is the node's own word: a node is
ready when its control interface answers `status` with at least one listen address.

A cluster made with `forked=True` forks its nodes from a zygote (`python -m lilypad_p2p.zygote`)
that has imported the node once: they start at once and share the imported libraries' memory.
Each is still its own process; a detached node (the devnet's) is always a `python -m` process of
its own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psutil

from lilypad_p2p.control import ControlError, call
from lilypad_p2p.localnet._forked import Zygote

# How long a node process may take to start answering its control socket.
NODE_START_TIMEOUT_S = 60.0
# How long a node may take to exit after SIGINT before it is killed.
NODE_STOP_TIMEOUT_S = 15.0
# Poll interval while waiting on a condition a node reports (not a readiness sleep: the
# condition is checked each time, bounded by a deadline).
POLL_INTERVAL_S = 0.1


class ClusterError(RuntimeError):
    """A node process did not start, answer or stop as expected."""


class ProcessHandle(Protocol):
    """What a cluster needs of a node's process: a `subprocess.Popen`, or a forked node."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def send_signal(self, sig: int) -> None: ...

    def kill(self) -> None: ...


@dataclass
class NodeProcess:
    name: str
    home: Path
    process: ProcessHandle
    log_path: Path
    status: dict[str, Any] = field(default_factory=dict)

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return call(self.home, method, params)

    @property
    def dial_addr(self) -> str:
        """A loopback multiaddr with /p2p/ that other nodes can bootstrap from."""
        for addr in self.status.get("listen_addrs", []):
            if addr.startswith("/ip4/127.0.0.1/"):
                return addr if "/p2p/" in addr else f"{addr}/p2p/{self.status['peer_id']}"
        raise ClusterError(f"{self.name} has no loopback listen address: {self.status}")

    def holds_records(self, addresses: Iterable[str]) -> bool:
        """Whether the node holds the NodeRecord of each of `addresses` (False while it does
        not answer). By address, not a count: solvers and clients publish records too, so a
        count can be reached while one mediator's is missing."""
        with contextlib.suppress(ControlError, OSError):
            held = {n["address"].lower() for n in self.call("nodes")}
            return {a.lower() for a in addresses} <= held
        return False

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def wait_ready(self, timeout_s: float = NODE_START_TIMEOUT_S) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ClusterError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            with contextlib.suppress(ControlError, OSError):
                status = self.call("status")
                if status.get("listen_addrs"):
                    self.status = status
                    return status
            time.sleep(POLL_INTERVAL_S)
        raise ClusterError(f"{self.name} not ready after {timeout_s} s:\n{self.log_tail()}")

    def stop(self, timeout_s: float = NODE_STOP_TIMEOUT_S, *, signalled: bool = False) -> int:
        """SIGINT (as Ctrl-C would; skipped if `signalled`), then SIGKILL if it does not exit in
        time. A second SIGINT would interrupt the node's own clean shutdown, so send one only."""
        if self.process.poll() is None:
            if not signalled:
                self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def cluster_processes_under(base_dir: Path) -> list[psutil.Process]:
    """The node processes (spawned or forked) and zygotes still running whose home or base
    directory is under `base_dir`: what a cluster there started and has not stopped."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "--home" in cmdline[:-1]:
            path = cmdline[cmdline.index("--home") + 1]
        elif "lilypad_p2p.zygote" in cmdline[:-1]:
            path = cmdline[-1]
        else:
            continue
        if Path(path).is_relative_to(base_dir):
            found.append(process)
    return found


class LocalCluster:
    """Starts and always tears down a set of real node processes."""

    def __init__(self, base_dir: Path, *, env: dict[str, str] | None = None,
                 forked: bool = False) -> None:
        self.base_dir = base_dir
        self.nodes: list[NodeProcess] = []
        self._env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        for variable in [name for name in self._env if name.startswith("LILYPAD_")]:
            if variable not in (env or {}):
                del self._env[variable]
        self._forked = forked
        self._zygote: Zygote | None = None

    def start_node(
        self,
        name: str,
        *,
        roles: Sequence[str] = (),
        bootstrap: Sequence[str] = (),
        markets: Sequence[str] = ("cpu",),
        extra_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        detached: bool = False,
    ) -> NodeProcess:
        home = self.base_dir / name
        home.mkdir(parents=True, exist_ok=True)
        args = ["node", "--home", str(home), "--listen", self.listen_addr(name)]
        args += [f"--{role}" for role in roles]
        for addr in bootstrap:
            args += ["--bootstrap", addr]
        for market in markets:
            args += ["--market", market]
        args += list(extra_args)
        log_path = home / "node.log"
        node_env = {**self._env, **(env or {})}
        process: ProcessHandle
        if self._forked and not detached:
            process = self._started_zygote().fork(args, node_env, log_path,
                                                  self.namespace(name))
        else:
            command = self.command(name, [sys.executable, "-m", "lilypad_p2p.cli", *args])
            with log_path.open("ab") as log:
                # Detached (the devnet): its own session, so it outlives the command that
                # started it.
                process = subprocess.Popen(
                    command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    env=node_env, start_new_session=detached)
        node = NodeProcess(name=name, home=home, process=process, log_path=log_path)
        self.nodes.append(node)
        return node

    def listen_addr(self, name: str) -> str:
        """Where the node `name` listens (a free loopback port)."""
        return "/ip4/127.0.0.1/tcp/0"

    def command(self, name: str, args: list[str]) -> list[str]:
        """The command that runs the node `name` as `args` says (as it is, here)."""
        return args

    @property
    def zygote_pid(self) -> int | None:
        """The process the nodes are forked from (None: not forked, or none started yet)."""
        return self._zygote.pid if self._zygote is not None else None

    def namespace(self, name: str) -> Path | None:
        """The network namespace a forked node `name` enters (none: this one)."""
        return None

    def _started_zygote(self) -> Zygote:
        if self._zygote is None:  # base_dir exists: it holds the node's home
            self._zygote = Zygote(self.base_dir, self._env)
        return self._zygote

    def wait_until(self, condition: Callable[[], bool], *, timeout_s: float, what: str) -> float:
        """Poll `condition()` until true; returns the seconds it took, or raises ClusterError."""
        start = time.monotonic()
        deadline = start + timeout_s
        while True:
            if condition():
                return time.monotonic() - start
            if time.monotonic() > deadline:
                raise ClusterError(f"timed out after {timeout_s} s waiting for {what}")
            time.sleep(POLL_INTERVAL_S)

    def stop_all(self) -> None:
        signalled = []
        for node in self.nodes:
            if node.process.poll() is None:
                node.process.send_signal(signal.SIGINT)
                signalled.append(node)
        for node in signalled:
            node.stop(signalled=True)
        if self._zygote is not None:
            self._zygote.close()
            self._zygote = None

    @contextlib.contextmanager
    def running(self) -> Iterator[LocalCluster]:
        try:
            yield self
        finally:
            self.stop_all()
