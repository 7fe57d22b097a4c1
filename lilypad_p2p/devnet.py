"""A local network that stays up: anvil, the settlement contract, and a few nodes in the
background, with a ready client home (in the manner of Bacalhau's devstack).

    lilypad-p2p devnet up        # chain + contract + a mediator, 2 providers, a solver, a client
    export LILYPAD_HOME=$(lilypad-p2p devnet status --client-home)
    lilypad-p2p run hash -i text=hello --output out/
    lilypad-p2p devnet down

Every node's account is funded and has deposited. The providers trust the devnet's mediator, a
node that registers itself on the contract and re-runs disputed jobs; the client names none, so
its deals take the registered mediators its providers trust (threshold: a strict majority) with
no hand configuration; providers accept any module that fits (`[modules] allow_any`), built from
a shipped recipe or pulled by digest. The processes run in their own sessions (closing the
terminal does not stop them); their PIDs and start times, the chain's URL and the contract are
kept in `<dir>/devnet.json`, which `status` and `down` read: a PID whose process is not the one
`up` started counts as gone, and is never signalled.
The nodes' homes are in `<dir>/homes`: `down` leaves them for reading logs, and the next `up`
replaces them, since a new chain knows none of their accounts, deposits or deals.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lilypad_p2p.errors import LilypadError

if TYPE_CHECKING:
    from lilypad_p2p.localnet._cluster import ProcessHandle

STATE_FILE = "devnet.json"
# The nodes' homes, under the devnet's directory: each `up` starts them anew, since the chain
# their accounts, deposits and deals lived on ended with the last devnet. The marker says the
# folder is ours to clear.
HOMES = "homes"
HOMES_MARKER = ".lilypad-devnet-homes"
NODE_STOP_TIMEOUT_S = 15.0
ANVIL_STOP_TIMEOUT_S = 10.0
PROVIDERS = 2
PROVIDER_POLICY = "[modules]\nallow_any = true\n"


class DevnetError(LilypadError):
    """The devnet cannot be started, read or stopped as asked."""


@dataclass(frozen=True)
class DevnetProcess:
    """A process `up` started: its PID, and when it started (clock ticks after boot, field 22
    of /proc/PID/stat)."""

    pid: int
    started: int


@dataclass
class DevnetState:
    directory: str
    rpc_url: str
    contract: str
    mediator: str
    anvil: DevnetProcess
    nodes: dict[str, DevnetProcess]  # by name; each node's home is <directory>/homes/<name>

    @property
    def client_home(self) -> Path:
        return Path(self.directory) / HOMES / "client"


def default_directory() -> Path:
    return Path(os.environ.get("LILYPAD_DEVNET_DIR") or Path.home() / ".lilypad-p2p-devnet")


def read_state(directory: Path) -> DevnetState | None:
    """What `up` left in `directory` (None: no devnet there).

    Raises:
        DevnetError: `directory` is a file, or its state cannot be read or is damaged.
    """
    path = directory / STATE_FILE
    try:
        return _state_from(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except NotADirectoryError as exc:
        raise DevnetError(f"the devnet's directory {directory} is a file or lies under one: give "
                          "--dir a directory (or a new path, for `devnet up`)") from exc
    except OSError as exc:
        raise DevnetError(f"cannot read {path} ({exc.strerror}): give --dir a devnet's "
                          "directory you can read") from exc
    except ValueError as exc:
        raise DevnetError(f"{path} is damaged ({exc}): stop by hand any devnet process still "
                          "running, then delete it") from exc


def _state_from(raw: Any) -> DevnetState:
    """The state as `up` wrote it, each field checked: a hand-edited file must not make us
    signal whatever it names."""
    fields = ("directory", "rpc_url", "contract", "mediator", "anvil", "nodes")
    if not isinstance(raw, dict) or any(field not in raw for field in fields):
        raise ValueError(f"want an object with {', '.join(fields)}")
    if not all(isinstance(raw[field], str) for field in fields[:4]):
        raise ValueError(f"{', '.join(fields[:4])} are text")
    if not isinstance(raw["nodes"], dict):
        raise ValueError("nodes is an object")
    nodes = {name: _process_from(node) for name, node in raw["nodes"].items()}
    return DevnetState(raw["directory"], raw["rpc_url"], raw["contract"], raw["mediator"],
                       _process_from(raw["anvil"]), nodes)


def _process_from(raw: Any) -> DevnetProcess:
    if not (isinstance(raw, dict) and type(raw.get("pid")) is int and raw["pid"] > 0
            and type(raw.get("started")) is int):
        raise ValueError(f"{raw!r} is not a process: want {{\"pid\": N, \"started\": N}}")
    return DevnetProcess(raw["pid"], raw["started"])


def _command(verb: str, directory: Path) -> str:
    """`lilypad-p2p devnet <verb>` for `directory`, ready to paste."""
    if directory.absolute() == default_directory().absolute():
        return f"lilypad-p2p devnet {verb}"
    return f"lilypad-p2p devnet {verb} --dir {shlex.quote(str(directory))}"


def up(directory: Path, *, providers: int = PROVIDERS) -> DevnetState:
    """Start the devnet under `directory` and leave it running.

    Raises:
        DevnetError: one is already running there, or a part did not start.
    """
    from lilypad_p2p.chain import deploy_settlement, open_rpc_chain
    from lilypad_p2p.identity import Identity
    from lilypad_p2p.localnet import (
        ClusterError,
        LocalCluster,
        MarketWorld,
        anvil_binary,
        await_listening,
        chain_test_accounts,
        fund_on_anvil,
        prepare_trusting_home,
    )

    known = read_state(directory)
    if known is not None and any(map(_running, [known.anvil, *known.nodes.values()])):
        raise DevnetError(f"a devnet is already up in {directory}: `{_command('down', directory)}` "
                          "first")
    binary = anvil_binary()
    if binary is None:
        raise DevnetError("anvil not found: run `npm ci` in contracts/ (scripts/setup does)")
    homes = _fresh_homes(directory)
    log_path = directory / "anvil.log"
    with log_path.open("wb") as log:
        anvil = subprocess.Popen(
            [str(binary), "--host", "127.0.0.1", "--port", "0", "--hardfork", "prague",
             "--accounts", "1"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    chain_process = _launched(anvil)
    started: dict[str, DevnetProcess] = {}
    try:
        url = await_listening(anvil, log_path)
        chain = open_rpc_chain(url)
        (deployer,) = chain_test_accounts(1)
        fund_on_anvil(chain, [deployer])
        contract = deploy_settlement(chain, deployer)
        mediator = Identity.load_or_create(homes / "mediator" / "keys",
                                           plaintext_expected=True).address
        world = MarketWorld(homes, url, contract, mediator, LocalCluster(homes))
        first = None
        # The mediator first: it registers on start, before any offer names it.
        plan = [("mediator", ["mediator"], "")]
        plan += [(f"provider-{i}", ["provider"], PROVIDER_POLICY)
                 for i in range(1, providers + 1)]
        plan += [("solver", ["solver"], ""), ("client", ["client"], "")]
        for name, roles, config_lines in plan:
            # The client names no mediators: it takes the registered ones its providers trust.
            prepare_trusting_home(world, name, [] if name == "client" else [mediator],
                                  config_lines=config_lines)
            node = world.cluster.start_node(
                name, roles=roles, bootstrap=[first] if first else [], detached=True)
            node.wait_ready()
            started[name] = _launched(node.process)
            first = first or node.dial_addr
    except (ClusterError, LilypadError, OSError, RuntimeError) as exc:
        _stop(list(started.values()), chain_process)
        raise DevnetError(f"devnet did not start: {exc}") from exc
    state = DevnetState(str(directory), url, contract, mediator, chain_process, started)
    (directory / STATE_FILE).write_text(json.dumps(asdict(state), indent=2))
    return state


def docker_problem() -> str | None:
    """Why the devnet's providers cannot run jobs on this machine (no Docker engine answers
    them, with how to start one), or None when they can."""
    from lilypad_p2p.exec import DockerEngine

    try:
        DockerEngine.connect().close()
    except LilypadError as exc:
        return str(exc)
    return None


def _fresh_homes(directory: Path) -> Path:
    """An empty homes folder under `directory`, the last devnet's removed.

    Raises:
        DevnetError: a homes folder is there that no devnet made (nothing is removed).
    """
    homes = directory / HOMES
    if homes.exists():
        if not (homes / HOMES_MARKER).exists():
            raise DevnetError(f"{homes} exists and no devnet made it: move it away, or give "
                              "another --dir")
        shutil.rmtree(homes)
    homes.mkdir(parents=True)
    (homes / HOMES_MARKER).touch()
    return homes


def status(directory: Path) -> dict[str, Any]:
    """Which parts are running, and what each node says about itself."""
    from lilypad_p2p.control import ControlError, call

    state = read_state(directory)
    if state is None:
        raise DevnetError(f"no devnet in {directory}: start one with `{_command('up', directory)}`")
    nodes = {}
    for name, process in state.nodes.items():
        home = directory / HOMES / name
        entry: dict[str, Any] = {"pid": process.pid, "running": _running(process),
                                 "home": str(home)}
        if entry["running"]:
            with contextlib.suppress(ControlError, OSError):
                said = call(home, "status")
                entry.update(address=said.get("address"), peers=said.get("peers"),
                             state=said.get("state"),
                             faults=[fault.get("fault") for fault in said.get("faults") or ()])
        nodes[name] = entry
    return {"directory": str(directory), "rpc_url": state.rpc_url, "contract": state.contract,
            "mediator": state.mediator, "chain_running": _running(state.anvil),
            "client_home": str(state.client_home), "nodes": nodes}


def down(directory: Path) -> int:
    """Stop every devnet process (nodes first, then the chain); how many were running."""
    state = read_state(directory)
    if state is None:
        raise DevnetError(f"no devnet in {directory}")
    running = _stop(list(state.nodes.values()), state.anvil)
    (directory / STATE_FILE).unlink(missing_ok=True)
    return running


def _launched(child: ProcessHandle) -> DevnetProcess:
    """The process `up` just started, with its start time: our child, not yet reaped, so its
    PID is still its own."""
    started = _start_ticks(child.pid)
    if started is None:
        child.kill()
        raise DevnetError(f"cannot read /proc/{child.pid}/stat: the devnet runs only on Linux")
    return DevnetProcess(child.pid, started)


def _start_ticks(pid: int) -> int | None:
    """When `pid` started, in clock ticks after boot (field 22 of /proc/PID/stat); None: no
    such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 2, the command's name, may hold spaces and parentheses: count after its last ")".
    return int(stat.rpartition(")")[2].split()[22 - 3])


def _running(process: DevnetProcess) -> bool:
    """Whether `process` still runs. A PID alone is not enough: once the process ends, or after
    a reboot, the PID goes to another. The start time tells them apart (another would have to
    get the PID on the very tick, of a later boot), where the command line does not (the next
    devnet's nodes read the same) and a wall-clock start time drifts when the clock is set."""
    return _start_ticks(process.pid) == process.started


def _stop(nodes: list[DevnetProcess], chain: DevnetProcess) -> int:
    """Stop those of `nodes`, then `chain`, that still run (no other process is signalled);
    how many ran."""
    running = [node for node in nodes if _running(node)]
    for node in running:
        _signal(node, signal.SIGINT)  # a node's clean shutdown, as Ctrl-C
    _wait_gone(running, NODE_STOP_TIMEOUT_S)
    chains = [chain] if _running(chain) else []
    for process in chains:
        _signal(process, signal.SIGTERM)
    _wait_gone(chains, ANVIL_STOP_TIMEOUT_S)
    return len(running) + len(chains)


def _signal(process: DevnetProcess, sig: int) -> None:
    """Send `sig` to `process` if it is still the one `up` started.

    The signal goes through a pidfd opened before the start time is checked: a pidfd stays
    bound to the process it was opened for, so the PID cannot pass to another in between."""
    try:
        pidfd = os.pidfd_open(process.pid)
    except ProcessLookupError:
        return
    try:
        if _running(process):
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(pidfd, sig)
    finally:
        os.close(pidfd)


def _wait_gone(processes: list[DevnetProcess], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    for process in processes:
        while _running(process) and time.monotonic() < deadline:
            _reap(process.pid)
            time.sleep(0.1)  # polling a process that is not our child: no wait() on it
        _signal(process, signal.SIGKILL)
        _reap(process.pid)


def _reap(pid: int) -> None:
    """Collect `pid` if it is our own child (started by `up` in this process)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
