"""Mediator nodes in a `MarketWorld`: homes whose config trusts a list of mediators; and
`ChunksGate`, which hands a mediation request's inputs to a `MediatorRole` called in-process.

    identities = [prepare_trusting_home(world, f"m{i}", []) for i in range(4)]
    trusted = [i.address for i in identities]
    node = start_trusting_node(world, "m0", roles=["mediator"], trusted=trusted)

    reply = await role.on_mediation_request(peer_id, request, ChunksGate(inputs))
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from lilypad_p2p.identity import Identity
from lilypad_p2p.net._transfer import ChunkSource
from lilypad_p2p.testing._chain import fund_on_anvil
from lilypad_p2p.testing._cluster import NodeProcess
from lilypad_p2p.testing._market import NODE_DEPOSIT_WEI, NODE_WALLET_WEI, MarketWorld


def node_identity(world: MarketWorld, name: str) -> Identity:
    """The identity the node `name` will run with (created on first use)."""
    return Identity.load_or_create(world.base_dir / name / "keys")


def prepare_trusting_home(
    world: MarketWorld, name: str, trusted: Sequence[str], *, config_lines: str = "",
    deposit_wei: int = NODE_DEPOSIT_WEI,
) -> Identity:
    """Like `MarketWorld.prepare_home`, trusting the mediators `trusted` (rewrites the config;
    funds and deposits only the first time)."""
    home = world.base_dir / name
    identity = node_identity(world, name)
    config = home / "config.toml"
    first_time = not config.exists()
    listed = ", ".join(f'"{address}"' for address in trusted)
    config.write_text(
        f"mediators = [{listed}]\n{config_lines}\n[chain]\n"
        f'rpc_url = "{world.rpc_url}"\ncontract = "{world.contract}"\n'
    )
    if first_time:
        client = world.settlement(identity)
        fund_on_anvil(client.chain, [identity.eth_account()], NODE_WALLET_WEI)
        if deposit_wei:
            client.deposit(deposit_wei)
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


def start_spot_checked_market(
    world: MarketWorld, provider_name: str, *, provider_config: str = "",
) -> tuple[NodeProcess, NodeProcess, NodeProcess]:
    """A provider, a mediator both trust, and a client that spot-checks every result with that
    mediator alone; (provider, mediator, client) once the client knows the other two."""
    trusted = [node_identity(world, "mediator").address]
    provider = start_trusting_node(world, provider_name, roles=["provider"], trusted=trusted,
                                   config_lines=provider_config)
    boot = [provider.dial_addr]
    mediator = start_trusting_node(world, "mediator", roles=["mediator"], trusted=trusted,
                                   bootstrap=boot)
    client = start_trusting_node(world, "client", roles=["client"], trusted=trusted,
                                 bootstrap=boot, config_lines="check_rate = 1.0\n"
                                 "consortium_size = 1\nconsortium_threshold = 1")
    world.wait_until_known(client, [provider])
    world.cluster.wait_until(lambda: client.call("status")["known_nodes"] >= 2,
                             timeout_s=60.0, what="the client to know the mediator")
    return provider, mediator, client


class ChunksGate:
    """Stands in for the network's `InputsGate`: hands the asker's chunks straight to the
    handler's sink and records what was asked for (`asked`: deal ID and size per ask)."""

    def __init__(self, chunks: ChunkSource) -> None:
        self._chunks = chunks
        self.asked: list[tuple[bytes, int]] = []

    async def receive(
        self, deal_id: bytes, plaintext_bytes: int, sink: Callable[[bytes], Awaitable[None]]
    ) -> None:
        self.asked.append((deal_id, plaintext_bytes))
        async for chunk in self._chunks():
            await sink(chunk)
