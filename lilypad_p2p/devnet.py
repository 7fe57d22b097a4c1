"""A local network that stays up: anvil, the settlement contract, and a few nodes in the
background, with a ready client home (in the manner of Bacalhau's devstack).

    lilypad-p2p devnet up        # chain + contract + 2 providers, a solver, a client
    export LILYPAD_HOME=$(lilypad-p2p devnet status --client-home)
    lilypad-p2p run hash -i text=hello --output out/
    lilypad-p2p devnet down

Every node's account is funded and has deposited. The providers trust the devnet's mediator
(registered on the contract); the client names none, so its deals take the registered
mediators its providers trust (threshold: a strict majority) with no hand configuration;
providers accept any
module that fits (`[modules] allow_any`), built from a shipped recipe or pulled by digest.
The processes run in their own sessions (closing the terminal does not stop them); their PIDs,
the chain's URL and the contract are kept in `<dir>/devnet.json`, which `status` and `down` read.
The nodes' homes are in `<dir>/homes`: `down` leaves them for reading logs, and the next `up`
replaces them, since a new chain knows none of their accounts, deposits or deals.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lilypad_p2p.errors import LilypadError
from lilypad_p2p.home import process_is_alive

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


@dataclass
class DevnetState:
    directory: str
    rpc_url: str
    contract: str
    mediator: str
    anvil_pid: int
    nodes: dict[str, int]  # name -> pid; each node's home is <directory>/<name>

    @property
    def client_home(self) -> Path:
        return Path(self.directory) / HOMES / "client"


def default_directory() -> Path:
    return Path(os.environ.get("LILYPAD_DEVNET_DIR") or Path.home() / ".lilypad-p2p-devnet")


def read_state(directory: Path) -> DevnetState | None:
    try:
        return DevnetState(**json.loads((directory / STATE_FILE).read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as exc:
        raise DevnetError(f"{directory / STATE_FILE} is damaged ({exc}); delete it") from exc


def up(directory: Path, *, providers: int = PROVIDERS) -> DevnetState:
    """Start the devnet under `directory` and leave it running.

    Raises:
        DevnetError: one is already running there, or a part did not start.
    """
    from lilypad_p2p.chain import SettlementClient, deploy_settlement, open_rpc_chain
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
    if known is not None and process_is_alive(known.anvil_pid):
        raise DevnetError(f"a devnet is already up in {directory}: `lilypad-p2p devnet down` first")
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
    started: dict[str, int] = {}
    try:
        url = await_listening(anvil, log_path)
        chain = open_rpc_chain(url)
        deployer, mediator = chain_test_accounts(2)
        fund_on_anvil(chain, [deployer, mediator])
        contract = deploy_settlement(chain, deployer)
        world = MarketWorld(homes, url, contract, mediator.address, LocalCluster(homes))
        SettlementClient(chain, contract, mediator).register_mediator(10**18)
        first = None
        plan = [(f"provider-{i}", ["provider"], PROVIDER_POLICY)
                for i in range(1, providers + 1)]
        plan += [("solver", ["solver"], ""), ("client", ["client"], "")]
        for name, roles, config_lines in plan:
            # The client names no mediators: it takes the registered ones its providers trust.
            prepare_trusting_home(world, name, [] if name == "client" else [mediator.address],
                                  config_lines=config_lines)
            node = world.cluster.start_node(
                name, roles=roles, bootstrap=[first] if first else [], detached=True)
            node.wait_ready()
            started[name] = node.process.pid
            first = first or node.dial_addr
    except (ClusterError, LilypadError, OSError, RuntimeError) as exc:
        _stop(started, anvil.pid)
        raise DevnetError(f"devnet did not start: {exc}") from exc
    state = DevnetState(str(directory), url, contract, mediator.address, anvil.pid, started)
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
        raise DevnetError(f"no devnet in {directory}: start one with `lilypad-p2p devnet up`")
    nodes = {}
    for name, pid in state.nodes.items():
        home = directory / HOMES / name
        entry: dict[str, Any] = {"pid": pid, "running": process_is_alive(pid), "home": str(home)}
        if entry["running"]:
            with contextlib.suppress(ControlError, OSError):
                said = call(home, "status")
                entry.update(address=said.get("address"), peers=said.get("peers"),
                             state=said.get("state"),
                             faults=[fault.get("fault") for fault in said.get("faults") or ()])
        nodes[name] = entry
    return {"directory": str(directory), "rpc_url": state.rpc_url, "contract": state.contract,
            "mediator": state.mediator, "chain_running": process_is_alive(state.anvil_pid),
            "client_home": str(state.client_home), "nodes": nodes}


def down(directory: Path) -> int:
    """Stop every devnet process (nodes first, then the chain); how many were running."""
    state = read_state(directory)
    if state is None:
        raise DevnetError(f"no devnet in {directory}")
    running = _stop(state.nodes, state.anvil_pid)
    (directory / STATE_FILE).unlink(missing_ok=True)
    return running


def _stop(nodes: dict[str, int], anvil_pid: int) -> int:
    running = [pid for pid in nodes.values() if process_is_alive(pid)]
    for pid in running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)  # a node's clean shutdown, as Ctrl-C
    _wait_gone(running, NODE_STOP_TIMEOUT_S)
    chain = [anvil_pid] if process_is_alive(anvil_pid) else []
    for pid in chain:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    _wait_gone(chain, ANVIL_STOP_TIMEOUT_S)
    return len(running) + len(chain)


def _wait_gone(pids: list[int], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    for pid in pids:
        while process_is_alive(pid) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.1)  # polling a process that is not our child: no wait() on it
        if process_is_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _reap(pid)


def _reap(pid: int) -> None:
    """Collect `pid` if it is our own child (started by `up` in this process)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
