"""The market roles a node runs (client, provider, mediator, chain bridge, request checker),
wired to its network, deal database, chains and Docker executors.

Each role gets what it needs from the node as arguments; this module only decides which roles
the configuration asks for, builds them in order and starts them under the node's nursery.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import trio

from lilypad_p2p.chain import RequestsClient
from lilypad_p2p.errors import ConfigError
from lilypad_p2p.market import Timeouts
from lilypad_p2p.net import MODULE_STREAM
from lilypad_p2p.node_health import open_chains_patiently
from lilypad_p2p.roles import (
    BridgeRole,
    ClientDisputes,
    ClientRole,
    DealChains,
    MediationSettings,
    MediatorContact,
    MediatorFault,
    MediatorRole,
    ProviderDisputes,
    ProviderRole,
    RequestChecker,
    open_bridge,
)
from lilypad_p2p.roles._client_records import ClientRecords, RecordPolicy
from lilypad_p2p.roles._deal_peers import open_deal_peers
from lilypad_p2p.roles._module_gate import definition_server
from lilypad_p2p.roles._module_setup import pull_limits
from lilypad_p2p.roles._transfer import spool_dir
from lilypad_p2p.store import DealStore

if TYPE_CHECKING:
    from lilypad_p2p.exec import Executor
    from lilypad_p2p.node import Node


async def start_market_roles(node: Node, nursery: trio.Nursery) -> None:
    """Open the deal database and the chains, then start the client and provider roles.

    Their stream handlers are installed before the network listens, so a peer that
    retries a deal right after our restart is answered at once.
    """
    config = node.config
    contact = functools.partial(mediator_contact, node)
    timeouts = Timeouts(
        match_ms=config.match_timeout_s * 1000,
        agreement_ms=config.agreement_timeout_s * 1000,
        acceptance_ms=config.acceptance_timeout_s * 1000,
        settlement_ms=config.settlement_timeout_s * 1000,
    )
    node.net.deals.serve(MODULE_STREAM, definition_server(node.modules))
    # The database first: a damaged one is refused at once, not after the chain answers.
    node.store = store = DealStore.open(node.config.database)
    nursery.start_soon(_close_at_exit, store)
    node.net.set_deal_peers(open_deal_peers(store))
    node.chains = chains = await open_chains_patiently(config, node.identity, node.health,
                                                       node._clock_ms)
    if node.config.has_role("provider"):
        defence = ProviderDisputes(node.identity, chains, contact)
        await nursery.start(defence.run)
        node.provider = ProviderRole(
            node.identity, store=store, chains=chains, book=node.book,
            executor_factory=executor_factory(node, "provider"),
            clock_ms=node._clock_ms, timeouts=timeouts,
            cheat_wrong_output=config.cheat_wrong_output,
            cheat_false_failure=config.cheat_false_failure, disputes=defence,
            availability=node.health.why_no_jobs,
            modules=node.modules, transport=node.net.deals,
            spool=spool_dir(config.home, "provider"), max_job_bytes=config.max_job_bytes,
        )
        node.provider.install()
        await nursery.start(node.provider.run)
    if node.config.has_role("client"):
        node.client = ClientRole(
            node.identity, store=store, chains=chains, book=node.book,
            publish=node.publisher.publish, transport=node.net.deals,
            node_record=node.node_records.get, mediators=node.config.mediators,
            results_dir=config.home / "results", clock_ms=node._clock_ms,
            timeouts=timeouts, acceptance_window_s=config.acceptance_window_s,
            modules=node.modules,
            max_job_bytes=config.max_job_bytes,
            records=ClientRecords(node.records, RecordPolicy(
                config.require_provider_deals, config.require_slash_free_blocks,
                config.prefer_provider_records)),
            disputes=ClientDisputes(node.identity, chains, contact,
                                    MediationSettings(config.check_rate_ppm,
                                                      config.mediation_fee_wei,
                                                      config.consortium_size,
                                                      config.consortium_threshold)),
        )
        await nursery.start(node.client.run)
        node.handlers.update(node.client.control_handlers(markets=config.markets))
    if node.config.has_role("chain-bridge"):  # on-chain job requests
        for bridge in _open_bridges(node, chains, store):
            await nursery.start(bridge.run)
    if node.config.has_role("mediator"):
        node.mediator = MediatorRole(
            node.identity, chains=chains,
            executor_factory=executor_factory(node, "mediator"),
            stake_wei=config.mediator_stake_wei,
            fault=MediatorFault.LIE if config.mediator_lies else MediatorFault.NONE,
            verdict_dir=config.home / "verdicts",
            modules=node.modules,
            spool=spool_dir(config.home, "mediator"), max_job_bytes=config.max_job_bytes,
        )
        node.mediator.install(node.net.deals)
        await nursery.start(node.mediator.run)
        for checker in _open_request_checkers(node, chains):
            await nursery.start(checker.run)


def _open_request_checkers(node: Node, chains: DealChains) -> list[RequestChecker]:
    """A mediator also re-runs posted results of on-chain requests (votes where a request
    names it, challenges wrong optimistic ones) on each chain with a `requests` contract."""
    return [RequestChecker(RequestsClient(chain.sync.chain, settings.requests,
                                          node.identity.eth_account()),
                           node.identity,
                           executor_factory=executor_factory(node, "request-checker"))
            for settings, chain in zip(node.config.chains, chains.values(), strict=True)
            if settings.requests is not None]


def _open_bridges(node: Node, chains: DealChains, store: DealStore) -> list[BridgeRole]:
    """A bridge per chain with a `requests` contract (one chain: its state in the home,
    as before; several: each in its own `bridge-<chain id>` directory).

    Raises:
        ConfigError: no chain has a `requests` contract (from `open_bridge`).
    """
    settings = node.config.chains
    if len(settings) == 1:
        return [open_bridge(settings[0].requests, chains.default, node.identity,
                            node.client, store, node.config.home,
                            confirmations=node.config.bridge_confirmations,
                            trusted_mediators=node.config.mediators)]
    bridged = [(chain_settings.requests, chain)
               for chain_settings, chain in zip(settings, chains.values(), strict=True)
               if chain_settings.requests is not None]
    if not bridged:
        raise ConfigError("the chain-bridge role needs a `requests` address in at least "
                          "one [[chains]] entry")
    bridges = []
    for requests, chain in bridged:
        home = node.config.home / f"bridge-{chain.chain_id}"
        home.mkdir(mode=0o700, exist_ok=True)
        bridges.append(open_bridge(requests, chain, node.identity, node.client, store, home,
                                   confirmations=node.config.bridge_confirmations,
                                   trusted_mediators=node.config.mediators))
    return bridges


def executor_factory(node: Node, role: str) -> Callable[[], Awaitable[Executor]]:
    """An executor per role with its own owner label and work root under the node's home,
    so each can clean up after a crash without touching the other's running jobs."""
    from lilypad_p2p.exec import Executor

    connect = functools.partial(
        Executor.connect,
        modules=node.modules,
        owner=f"{node.identity.address}/{role}",
        workdir_root=node.config.home / "jobs" / role,
        pull_limits=pull_limits(node.config),
    )

    async def connect_and_keep() -> Executor:
        node.executors[role] = executor = await connect()
        return executor

    return connect_and_keep


def mediator_contact(node: Node, address: str) -> MediatorContact | None:
    """How the client reaches a mediator: its gossiped NodeRecord, a mediation stream."""
    record = node.node_records.get(address)
    if record is None or not record.mediator_available:
        return None
    return MediatorContact(address, record.sealing_public_key, record.peer_id, node.net.deals,
                           tuple(record.listen_addrs))


async def _close_at_exit(store: DealStore) -> None:
    try:
        await trio.sleep_forever()
    finally:
        store.close()
