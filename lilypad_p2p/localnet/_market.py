"""A small real market on this machine: anvil, the settlement contract, and node processes
with funded, deposited accounts. Used by the simnet, the demo, the market integration tests
and the benchmarks.

    with market_world(tmp_path) as world:
        provider = world.start("p1", roles=["provider"])
        client = world.start("c1", roles=["client"], bootstrap=[provider.dial_addr])
        key = client.call("submit", {"module": "hash", "params": {"text": "hi"}})["key"]
        world.wait_for_phase(client, key, {"settled"})
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lilypad_p2p.chain import SettlementClient, deploy_settlement, open_rpc_chain
from lilypad_p2p.control import ControlError
from lilypad_p2p.identity import Identity
from lilypad_p2p.localnet._anvil import chain_test_accounts, fund_on_anvil, running_anvil
from lilypad_p2p.localnet._cluster import (
    NODE_STOP_TIMEOUT_S,
    POLL_INTERVAL_S,
    ClusterError,
    LocalCluster,
    NodeProcess,
)

# What every node's account holds on the chain, and deposits into the contract at start.
NODE_WALLET_WEI = 1000 * 10**18
NODE_DEPOSIT_WEI = 10 * 10**18
# Short on-chain notice for the test contract (withdrawals are not exercised here).
TEST_WITHDRAW_NOTICE_S = 60
# The disk a provider here offers, whatever is free: a local job writes little, and the shipped
# python module (which may write 4 GiB) must match on a machine with less free space.
LOCAL_OFFER_DISK_MB = 16 * 1024
# Bounded waits for what the nodes report.
MARKET_READY_TIMEOUT_S = 60.0


@dataclass
class MarketWorld:
    """Anvil, a deployed contract, a trusted mediator address, and the nodes started so far."""

    base_dir: Path
    rpc_url: str
    contract: str
    mediator: str
    cluster: LocalCluster
    nodes: dict[str, NodeProcess] = field(default_factory=dict)

    def settlement(self, identity: Identity) -> SettlementClient:
        return SettlementClient(open_rpc_chain(self.rpc_url), self.contract,
                                identity.eth_account())

    def prepare_home(
        self, name: str, *, deposit_wei: int = NODE_DEPOSIT_WEI, config_lines: str = ""
    ) -> Identity:
        """Create the node's keys and config, fund its account and deposit (idempotent).

        `config_lines` are top-level config.toml settings, e.g. "acceptance_timeout_s = 2\n".
        """
        home = self.base_dir / name
        keys = home / "keys"
        identity = Identity.load_or_create(keys, plaintext_expected=True)
        config = home / "config.toml"
        if not config.exists():
            self.write_config(name, [self.mediator], config_lines)
            self.fund_and_deposit(identity, deposit_wei)
        return identity

    def write_config(self, name: str, mediators: Sequence[str], config_lines: str) -> None:
        """The node's config.toml: the mediators it trusts, the disk it offers,
        `config_lines`, this chain."""
        listed = ", ".join(f'"{address}"' for address in mediators)
        (self.base_dir / name / "config.toml").write_text(
            f"mediators = [{listed}]\noffer_disk_mb = {LOCAL_OFFER_DISK_MB}\n{config_lines}\n"
            "[chain]\n"
            f'rpc_url = "{self.rpc_url}"\ncontract = "{self.contract}"\n'
        )

    def fund_and_deposit(self, identity: Identity, deposit_wei: int) -> None:
        """Fund the account with NODE_WALLET_WEI and deposit `deposit_wei` of it (if any)."""
        client = self.settlement(identity)
        fund_on_anvil(client.chain, [identity.eth_account()], NODE_WALLET_WEI)
        if deposit_wei:
            client.deposit(deposit_wei)

    def start(
        self,
        name: str,
        *,
        roles: Sequence[str],
        bootstrap: Sequence[str] = (),
        wait_ready: bool = True,
        config_lines: str = "",
        env: dict[str, str] | None = None,
    ) -> NodeProcess:
        self.prepare_home(name, config_lines=config_lines)
        node = self.cluster.start_node(name, roles=roles, bootstrap=bootstrap, env=env)
        if wait_ready:
            node.wait_ready()
        self.nodes[name] = node
        return node

    def restart(self, node: NodeProcess, *, roles: Sequence[str],
                bootstrap: Sequence[str] = ()) -> NodeProcess:
        again = self.cluster.start_node(node.name, roles=roles, bootstrap=bootstrap)
        again.wait_ready()
        self.nodes[node.name] = again
        return again

    def stop_all(self) -> None:
        """SIGINT every running node once, then wait for each (killing a stuck one).

        `LocalCluster.stop_all` may signal a node a second time while it is already exiting,
        which kills it with SIGINT (-2) during interpreter teardown; callers that check exit
        codes stop the nodes here first.
        """
        running = [n for n in self.cluster.nodes if n.process.poll() is None]
        for node in running:
            node.process.send_signal(signal.SIGINT)
        for node in running:
            try:
                node.process.wait(NODE_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()

    def balance(self, address: str) -> int:
        """Free plus locked balance of `address` on the contract (wei)."""
        reader = SettlementClient(open_rpc_chain(self.rpc_url), self.contract)
        balance = reader.balance(address)
        return balance.free + balance.locked

    def wait_until_known(self, client: NodeProcess, providers: Iterable[NodeProcess]) -> None:
        """Until `client` holds each provider's resource offer and NodeRecord."""
        wanted = {p.status["address"] for p in providers}

        def known() -> bool:
            with contextlib.suppress(ControlError, OSError):
                owners = {o["owner"] for o in client.call("offers", {"market": "cpu"})}
                return wanted <= owners and client.holds_records(wanted)
            return False

        self.cluster.wait_until(known, timeout_s=MARKET_READY_TIMEOUT_S,
                                what=f"{client.name} to know every provider")

    def wait_for_phase(
        self, node: NodeProcess, key: str, phases: set[str], *, timeout_s: float
    ) -> dict[str, Any]:
        """Poll the node's deal `key` until its phase is one of `phases`; the deal then."""
        deadline = time.monotonic() + timeout_s
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            with contextlib.suppress(ControlError, OSError):
                last = node.call("deal", {"key": key})
                if last["phase"] in phases:
                    return last
            time.sleep(POLL_INTERVAL_S)
        raise ClusterError(f"deal {key} on {node.name} is {last.get('phase')}, not {phases}, "
                           f"after {timeout_s} s:\n{node.log_tail()}")


@contextlib.contextmanager
def market_world(base_dir: Path, *, anvil_host: str = "127.0.0.1",
                 forked: bool = False) -> Iterator[MarketWorld]:
    """Anvil with the settlement contract deployed; nodes started in it are stopped on exit.

    `anvil_host`: the address anvil listens on (e.g. the NAT lab's uplink, so nodes in network
    namespaces reach the chain; such nodes are started by the lab, with `prepare_home`).
    `forked`: fork the nodes from one zygote (`LocalCluster`), for worlds of many nodes.
    """
    with running_anvil(host=anvil_host) as url:
        chain = open_rpc_chain(url)
        deployer, mediator = chain_test_accounts(2)
        fund_on_anvil(chain, [deployer])
        contract = deploy_settlement(chain, deployer, withdraw_notice_s=TEST_WITHDRAW_NOTICE_S)
        cluster = LocalCluster(base_dir, forked=forked)
        world = MarketWorld(base_dir, url, contract, mediator.address, cluster)
        with cluster.running():
            yield world
