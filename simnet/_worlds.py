"""The simnet's worlds: `market_world` on loopback, or the same world with its nodes in network
namespace groups (`NetnsLab`) and anvil in the lab's core, for partition and NAT scenarios."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path

from lilypad_p2p.chain import deploy_settlement, open_rpc_chain
from lilypad_p2p.localnet import (
    TEST_WITHDRAW_NOTICE_S,
    LocalCluster,
    MarketWorld,
    NodeProcess,
    anvil_binary,
    chain_test_accounts,
    fund_on_anvil,
    market_world,
)
from simnet._netns import NetnsError, NetnsLab


class NamespacedCluster(LocalCluster):
    """A `LocalCluster` whose nodes run in their group's namespace, listening on its address."""

    def __init__(self, base_dir: Path, lab: NetnsLab, group_of: Mapping[str, str], *,
                 forked: bool) -> None:
        super().__init__(base_dir, forked=forked)
        self.lab = lab
        self.group_of = dict(group_of)

    def listen_addr(self, name: str) -> str:
        return f"/ip4/{self.lab.node_ip(self.group_of[name])}/tcp/0"

    def command(self, name: str, args: list[str]) -> list[str]:
        return self.lab.command(self.group_of[name], args)

    def namespace(self, name: str) -> Path:
        return self.lab.namespace_file(self.group_of[name])


def dial_addr(node: NodeProcess) -> str:
    """A direct (not relayed) multiaddr with /p2p/ that other nodes can bootstrap from."""
    for addr in node.status.get("listen_addrs", []):
        if addr.startswith("/ip4/") and "/p2p-circuit" not in addr \
                and not addr.startswith("/ip4/0.0.0.0/"):
            return addr if "/p2p/" in addr else f"{addr}/p2p/{node.status['peer_id']}"
    raise NetnsError(f"{node.name} has no direct listen address: {node.status}")


@contextlib.contextmanager
def namespaced_world(base_dir: Path, lab: NetnsLab, group_of: Mapping[str, str], *,
                     forked: bool) -> Iterator[MarketWorld]:
    """A `MarketWorld` in `lab`: anvil in the core, each node in its group's namespace."""
    binary = anvil_binary()
    if binary is None:
        raise FileNotFoundError("anvil not found: run `npm ci` in contracts/ (scripts/setup)")
    base_dir.mkdir(parents=True, exist_ok=True)
    with lab.running(), lab.anvil(binary, base_dir / "anvil.log") as url:
        chain = open_rpc_chain(url)
        deployer, mediator = chain_test_accounts(2)
        fund_on_anvil(chain, [deployer])
        contract = deploy_settlement(chain, deployer, withdraw_notice_s=TEST_WITHDRAW_NOTICE_S)
        cluster = NamespacedCluster(base_dir, lab, group_of, forked=forked)
        world = MarketWorld(base_dir, url, contract, mediator.address, cluster)
        with cluster.running():
            yield world


def world_for(base_dir: Path, lab: NetnsLab | None, group_of: Mapping[str, str], *,
              forked: bool) -> contextlib.AbstractContextManager[MarketWorld]:
    """The world of a run; `forked`: its nodes forked from one zygote (`LocalCluster`)."""
    if lab is None:
        return market_world(base_dir, forked=forked)
    return namespaced_world(base_dir, lab, group_of, forked=forked)
