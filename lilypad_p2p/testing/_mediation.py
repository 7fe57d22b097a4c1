"""A spot-checked three-node market in a `MarketWorld`; and `ChunksGate`, which hands a
mediation request's inputs to a `MediatorRole` called in-process.

    provider, mediator, client = start_spot_checked_market(world, "provider")
    reply = await role.on_mediation_request(peer_id, request, ChunksGate(inputs))
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from lilypad_p2p.localnet import MarketWorld, NodeProcess, node_identity, start_trusting_node
from lilypad_p2p.net import ChunkSource


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
