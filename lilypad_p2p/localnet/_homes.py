"""Node homes in a `MarketWorld` whose config trusts a list of mediators: funded, deposited,
and each node's identity known before it starts.

    identities = [prepare_trusting_home(world, f"m{i}", []) for i in range(4)]
    trusted = [i.address for i in identities]
    node = start_trusting_node(world, "m0", roles=["mediator"], trusted=trusted)
"""

from __future__ import annotations

from collections.abc import Sequence

from lilypad_p2p.identity import Identity
from lilypad_p2p.localnet._cluster import NodeProcess
from lilypad_p2p.localnet._market import NODE_DEPOSIT_WEI, MarketWorld


def node_identity(world: MarketWorld, name: str) -> Identity:
    """The identity the node `name` will run with (created on first use)."""
    return Identity.load_or_create(world.base_dir / name / "keys", plaintext_expected=True)


def prepare_trusting_home(
    world: MarketWorld, name: str, trusted: Sequence[str], *, config_lines: str = "",
    deposit_wei: int = NODE_DEPOSIT_WEI,
) -> Identity:
    """Like `MarketWorld.prepare_home`, trusting the mediators `trusted` (rewrites the config;
    funds and deposits only the first time)."""
    identity = node_identity(world, name)
    first_time = not (world.base_dir / name / "config.toml").exists()
    world.write_config(name, trusted, config_lines)
    if first_time:
        world.fund_and_deposit(identity, deposit_wei)
    return identity


def start_trusting_node(
    world: MarketWorld, name: str, *, roles: Sequence[str], trusted: Sequence[str],
    bootstrap: Sequence[str] = (), config_lines: str = "",
) -> NodeProcess:
    prepare_trusting_home(world, name, trusted, config_lines=config_lines)
    node = world.cluster.start_node(name, roles=roles, bootstrap=bootstrap)
    node.wait_ready()
    world.nodes[name] = node
    return node
