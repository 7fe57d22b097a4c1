"""Which chains a node reads providers' track records from (chain/_record_feed.py).

A node with market roles follows the chains it deals on (clients name and check records, a
provider's `market` view explains record refusals). A solver without them follows every
configured JSON-RPC chain with a contract, read-only (it signs nothing): it needs the records
of the blocks jobs name to match them. The embedded chain is the node's own, so a solver alone
has nothing to read there. Every feed polls slowly: a job names its client's latest block, and
the solvers and client that ask for records there wake their feed at once.
"""

from __future__ import annotations

import logging

import trio

from lilypad_p2p.chain import ChainError, RecordFeed, open_rpc_chain
from lilypad_p2p.config import ChainSettings, NodeConfig
from lilypad_p2p.health import Backoff
from lilypad_p2p.logs import event
from lilypad_p2p.roles import DealChains

log = logging.getLogger("lilypad_p2p.records")


def start_record_feeds(nursery: trio.Nursery, feed: RecordFeed, config: NodeConfig,
                       chains: DealChains | None) -> None:
    """Follow each chain the node has (or, without market roles, can read) in `nursery`."""
    if chains is not None:
        for chain in chains.values():
            nursery.start_soon(feed.follow, chain.sync.chain, chain.sync.address)
        return
    for settings in config.chains:
        if settings.rpc_url is not None and settings.contract is not None:
            nursery.start_soon(_follow_rpc, feed, settings)


async def _follow_rpc(feed: RecordFeed, settings: ChainSettings) -> None:
    assert settings.rpc_url is not None and settings.contract is not None
    backoff = Backoff()
    while True:
        try:
            chain = await trio.to_thread.run_sync(open_rpc_chain, settings.rpc_url)
        except ChainError as exc:
            event(log, "records.chain_unreachable", logging.WARNING, rpc=settings.rpc_url,
                  error=str(exc))
            await trio.sleep(backoff.next_s())
            continue
        await feed.follow(chain, settings.contract)
