"""Build a Node from a NodeConfig and run it under one trio nursery until Ctrl-C.

The node owns the only nursery: the gossip network, the control interface, the loop that feeds
validated envelopes into the offer book, and the publisher of our own signed records and offers
all run as its children, so one cancellation (SIGINT, SIGTERM or a crash of any service) stops
them all and the control socket is removed on the way out.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import signal
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import trio

from lilypad_p2p import wire
from lilypad_p2p.chain import RecordFeed, RequestsClient
from lilypad_p2p.config import NODE_RECORD_INTERVAL_S, NodeConfig
from lilypad_p2p.control import Handler, serve_control
from lilypad_p2p.errors import ConfigError, LilypadError
from lilypad_p2p.health import Health
from lilypad_p2p.home import HomeLock
from lilypad_p2p.identity import Identity, load_handover
from lilypad_p2p.keystore import PasswordSource
from lilypad_p2p.logs import configure_logging, event
from lilypad_p2p.market import AddOutcome, OfferBook, Republisher, Timeouts
from lilypad_p2p.market._market_watch import MarketWatch
from lilypad_p2p.net import (
    MEDIATION_PROTOCOL,
    MODULE_PROTOCOL,
    CancelReceived,
    GossipNet,
    MarketTopic,
    Muxer,
    NatSettings,
    NetEvent,
    NodeRecordReceived,
    OfferReceived,
    PeerJoined,
    ProposalReceived,
    preferring,
    wall_clock_ms,
)
from lilypad_p2p.net._transfer import ChunkSource, answer_only
from lilypad_p2p.node_control import NodeControl
from lilypad_p2p.node_health import Watchdog, open_chains_patiently
from lilypad_p2p.node_market import publish_watched, watch_proposal
from lilypad_p2p.node_records import start_record_feeds
from lilypad_p2p.roles import (
    DEFAULT_COLLATERAL_WEI,
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
    Solver,
    detect_capacity,
    open_bridge,
    resource_offer,
)
from lilypad_p2p.roles._client_records import ClientRecords, RecordPolicy
from lilypad_p2p.roles._deal_peers import open_deal_peers
from lilypad_p2p.roles._module_gate import definition_server
from lilypad_p2p.roles._module_setup import module_catalog, module_policy, pull_limits
from lilypad_p2p.roles._transfer import spool_dir
from lilypad_p2p.store import DealStore, StoreError
from lilypad_p2p.wire import ENVELOPE_MAX_AGE_MS

if TYPE_CHECKING:
    from lilypad_p2p.exec import Executor

log = logging.getLogger("lilypad_p2p.node")

# A NodeRecord is valid for this long; it is re-published every NODE_RECORD_INTERVAL_S.
NODE_RECORD_LIFETIME_MS = 10 * 60 * 1000
# How often the offer book drops expired offers.
EXPIRY_SWEEP_INTERVAL_S = 1.0
# Upper bound on the publisher's sleep, so newly tracked offers are never late by more.
PUBLISHER_MAX_SLEEP_S = 1.0
# A node with bootstrap peers waits this long at most for a mesh before its first publication
# (published into an empty mesh, an offer would reach nobody until it is re-published).
FIRST_MESH_TIMEOUT_S = 10.0
MESH_POLL_INTERVAL_S = 0.05
# Envelopes served to syncing peers must still be fresh when they arrive.
SYNC_FRESHNESS_MARGIN_MS = 20_000
# Our NodeRecord is re-published early when our addresses change, never more often than this.
NODE_RECORD_MIN_GAP_S = 2.0


class Node:
    """One participant: gossip network, offer book, control interface, and its roles."""

    def __init__(
        self,
        config: NodeConfig,
        identity: Identity,
        *,
        clock_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self.config = config
        self.identity = identity
        self._clock_ms = clock_ms
        self.net = GossipNet(
            identity,
            listen_addrs=config.listen,
            bootstrap=config.bootstrap + config.bootstrap_file_peers,
            markets=config.markets,
            clock_ms=clock_ms,
            offer_snapshot=self._offer_snapshot,
            nat=_nat_settings(config),
            muxers=preferring(Muxer(config.muxer)),
            limits=config.net_limits,
            # A new relay address must reach peers before the next periodic NodeRecord.
            on_addrs_changed=lambda: self._addrs_changed.set(),
        )
        self.book = OfferBook()
        # Modules this node knows (shipped + added under its home); their definitions are
        # served to peers over /lilypad/module/1 (providers fetch what job creators name).
        self.modules = module_catalog(config.home)
        self.solver: Solver | None = None
        # Providers' track records at the blocks job offers name (solvers and clients read them).
        self.records = RecordFeed()
        # Matches heard recently, for `lilypad-p2p market` (node_market.py).
        self.market_watch = MarketWatch()
        if config.has_role("solver"):
            self.solver = Solver(
                identity,
                self.book,
                markets=config.markets,
                publish=publish_watched(self),
                clock_ms=clock_ms,
                records=self.records.for_jobs,
            )
        self.node_records: dict[str, wire.NodeRecord] = {}
        # The envelopes they came in, served to syncing peers while still fresh.
        self._record_envelopes: dict[str, wire.SignedEnvelope] = {}
        # Retired address -> the address that replaced it (records carrying a hand-over).
        self.successors: dict[str, str] = {}
        # Ours, after `keys rotate`: the retired key's hand-over, put in our NodeRecord.
        self._handover = load_handover(config.keystore_dir, identity.address)
        # The market roles need the chains and the database; both open in `run`.
        self.chains: DealChains | None = None
        self.store: DealStore | None = None
        self.client: ClientRole | None = None
        self.provider: ProviderRole | None = None
        self.mediator: MediatorRole | None = None
        # The Docker executor of each role that connected one (their runs and pulls are metrics).
        self.executors: dict[str, Executor] = {}
        self._republisher = Republisher()
        self._addrs_changed = trio.Event()
        self._started_at = trio.current_time()
        # Chain, Docker and disk faults (health.py): reported, retried, never fatal.
        self.health = Health()
        self._watchdog = Watchdog(
            self.health, home=config.home, chains=lambda: self.chains,
            docker=config.has_role("provider") or config.has_role("mediator"),
            clock_ms=clock_ms, react=self._health_changed,
        )
        # Our published resource offers, withdrawn (cancelled) while we cannot run jobs.
        self._own_offers: list[wire.ResourceOffer] = []
        self._handlers = self.control_handlers()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            # First, so that `status` tells what the node waits for (a chain that does not
            # answer yet); the roles' methods are added once they run.
            await nursery.start(serve_control, self.config.control_socket,
                                self.config.control_token_file, self._handlers)
            if self.config.metrics_listen is not None:
                # Early too: probes see /healthz, and /readyz says what the node waits for.
                await self._start_observe(nursery, self.config.metrics_listen)
            if any(self.config.has_role(r)
                   for r in ("client", "provider", "mediator", "chain-bridge")):
                await self._start_market_roles(nursery)
            if self.solver is not None or self.chains is not None:
                start_record_feeds(nursery, self.records, self.config, self.chains)
            await nursery.start(self.net.run)
            nursery.start_soon(self._consume_events)
            nursery.start_soon(self._sweep_expired)
            await self._wait_for_first_mesh()
            nursery.start_soon(self._publish_node_record)
            if self.chains is not None:
                # Probes first, then reacts: a provider offers only once it can run jobs.
                nursery.start_soon(self._watchdog.run)
            nursery.start_soon(self._republish_own_offers)
            if self.solver is not None:
                await nursery.start(self.solver.run)
            if self.config.spam_gossip_per_s:  # a test fault (config.py)
                from lilypad_p2p.testing import spam_gossip

                nursery.start_soon(spam_gossip, self.net, self.identity,
                                   self.config.spam_gossip_per_s, self._clock_ms)
            event(
                log,
                "node.started",
                peer_id=str(self.identity.peer_id),
                address=self.identity.address,
                roles=sorted(self.config.roles),
                listen=self.net.listen_addrs(),
            )
            task_status.started()

    async def _start_observe(self, nursery: trio.Nursery, listen: str) -> None:
        """The operator's listener (observe/): a token is required off loopback."""
        from lilypad_p2p.observe import ObserveService, is_loopback, load_or_create_token

        host, _, port = listen.rpartition(":")
        host = host.strip("[]")
        token_file = self.config.home / "metrics.token"
        token = None if is_loopback(host) else load_or_create_token(token_file)
        try:
            bound = await nursery.start(
                ObserveService(self._handlers, token=token).run, host, int(port)
            )
        except OSError as exc:
            raise LilypadError(
                f"metrics_listen {listen}: cannot listen ({exc.strerror}); choose a free "
                "HOST:PORT or leave it out"
            ) from None
        event(log, "observe.listening", url=f"http://{listen.rpartition(':')[0]}:{bound}/",
              token_file=str(token_file) if token else None)

    async def _start_market_roles(self, nursery: trio.Nursery) -> None:
        """Open the deal database and the chains, then start the client and provider roles.

        Their stream handlers are installed before the network listens, so a peer that
        retries a deal right after our restart is answered at once.
        """
        config = self.config
        timeouts = Timeouts(
            match_ms=config.match_timeout_s * 1000,
            agreement_ms=config.agreement_timeout_s * 1000,
            acceptance_ms=config.acceptance_timeout_s * 1000,
            settlement_ms=config.settlement_timeout_s * 1000,
        )
        self.net.set_stream_handler(MODULE_PROTOCOL, definition_server(self.modules))
        # The database first: a damaged one is refused at once, not after the chain answers.
        self.store = store = DealStore.open(self.config.database)
        nursery.start_soon(_close_at_exit, store)
        self.net.set_deal_peers(open_deal_peers(store))
        self.chains = chains = await open_chains_patiently(config, self.identity, self.health,
                                                           self._clock_ms)
        if self.config.has_role("provider"):
            defence = ProviderDisputes(self.identity, chains, self._mediator_contact)
            await nursery.start(defence.run)
            self.provider = ProviderRole(
                self.identity, store=store, chains=chains, book=self.book,
                executor_factory=self._executor_factory("provider"),
                clock_ms=self._clock_ms, timeouts=timeouts,
                cheat_wrong_output=config.cheat_wrong_output,
                cheat_false_failure=config.cheat_false_failure, disputes=defence,
                availability=self.health.why_no_jobs,
                modules=self.modules, request=self.net.request,
                spool=spool_dir(config.home, "provider"), max_job_bytes=config.max_job_bytes,
            )
            self.provider.install(self.net.set_stream_handler, self.net.set_transfer_handler)
            await nursery.start(self.provider.run)
        if self.config.has_role("client"):
            self.client = ClientRole(
                self.identity, store=store, chains=chains, book=self.book,
                publish=self._publish, request=self.net.request,
                node_record=self.node_records.get, mediators=self.config.mediators,
                results_dir=config.home / "results", clock_ms=self._clock_ms,
                timeouts=timeouts, acceptance_window_s=config.acceptance_window_s,
                modules=self.modules, exchange=self.net.exchange,
                max_job_bytes=config.max_job_bytes,
                records=ClientRecords(self.records, RecordPolicy(
                    config.require_provider_deals, config.require_slash_free_blocks,
                    config.prefer_provider_records)),
                disputes=ClientDisputes(self.identity, chains, self._mediator_contact,
                                        MediationSettings(config.check_rate_ppm,
                                                          config.mediation_fee_wei,
                                                          config.consortium_size,
                                                          config.consortium_threshold)),
            )
            await nursery.start(self.client.run)
            self._handlers.update(self.client.control_handlers())
        if self.config.has_role("chain-bridge"):  # on-chain job requests
            for bridge in self._open_bridges(chains, store):
                await nursery.start(bridge.run)
        if self.config.has_role("mediator"):
            self.mediator = MediatorRole(
                self.identity, chains=chains,
                executor_factory=self._executor_factory("mediator"),
                stake_wei=config.mediator_stake_wei,
                fault=MediatorFault.LIE if config.mediator_lies else MediatorFault.NONE,
                verdict_dir=config.home / "verdicts",
                modules=self.modules, request=self.net.request,
                spool=spool_dir(config.home, "mediator"), max_job_bytes=config.max_job_bytes,
            )
            self.mediator.install(self.net.set_transfer_handler)
            await nursery.start(self.mediator.run)
            for checker in self._open_request_checkers(chains):
                await nursery.start(checker.run)

    def _open_request_checkers(self, chains: DealChains) -> list[RequestChecker]:
        """A mediator also re-runs posted results of on-chain requests (votes where a request
        names it, challenges wrong optimistic ones) on each chain with a `requests` contract."""
        return [RequestChecker(RequestsClient(chain.sync.chain, settings.requests,
                                              self.identity.eth_account()),
                               self.identity,
                               executor_factory=self._executor_factory("request-checker"))
                for settings, chain in zip(self.config.chains, chains.values(), strict=True)
                if settings.requests is not None]

    def _open_bridges(self, chains: DealChains, store: DealStore) -> list[BridgeRole]:
        """A bridge per chain with a `requests` contract (one chain: its state in the home,
        as before; several: each in its own `bridge-<chain id>` directory).

        Raises:
            ConfigError: no chain has a `requests` contract (from `open_bridge`).
        """
        settings = self.config.chains
        if len(settings) == 1:
            return [open_bridge(settings[0].requests, chains.default, self.identity,
                                self.client, store, self.config.home,
                                confirmations=self.config.bridge_confirmations,
                                trusted_mediators=self.config.mediators)]
        bridged = [(chain_settings.requests, chain)
                   for chain_settings, chain in zip(settings, chains.values(), strict=True)
                   if chain_settings.requests is not None]
        if not bridged:
            raise ConfigError("the chain-bridge role needs a `requests` address in at least "
                              "one [[chains]] entry")
        bridges = []
        for requests, chain in bridged:
            home = self.config.home / f"bridge-{chain.chain_id}"
            home.mkdir(mode=0o700, exist_ok=True)
            bridges.append(open_bridge(requests, chain, self.identity, self.client, store, home,
                                       confirmations=self.config.bridge_confirmations,
                                       trusted_mediators=self.config.mediators))
        return bridges

    def _executor_factory(self, role: str) -> Callable[[], Awaitable[Executor]]:
        """An executor per role with its own owner label and work root under the node's home,
        so each can clean up after a crash without touching the other's running jobs."""
        from lilypad_p2p.exec import Executor

        connect = functools.partial(
            Executor.connect,
            modules=self.modules,
            owner=f"{self.identity.address}/{role}",
            workdir_root=self.config.home / "jobs" / role,
            pull_limits=pull_limits(self.config),
        )

        async def connect_and_keep() -> Executor:
            self.executors[role] = executor = await connect()
            return executor

        return connect_and_keep

    def _mediator_contact(self, address: str) -> MediatorContact | None:
        """How the client reaches a mediator: its gossiped NodeRecord, a mediation stream."""
        record = self.node_records.get(address)
        if record is None or not record.mediator_available:
            return None

        async def ask(request: wire.MediationRequest, inputs: ChunkSource) -> wire.DealMessage:
            return await self.net.exchange(record.peer_id, MEDIATION_PROTOCOL, request,
                                           inputs=inputs, on_answer=answer_only,
                                           addrs=record.listen_addrs)

        return MediatorContact(address, record.sealing_public_key, ask)

    # --- our own signed records and offers ----------------------------------------------

    def _node_record(self, now_ms: int) -> wire.NodeRecord:
        return wire.NodeRecord(
            address=self.identity.address,
            peer_id=str(self.identity.peer_id),
            # Local-only roles (the chain bridge) are not announced on the network.
            roles=tuple(sorted(self.config.roles & set(wire.ROLES))),
            sealing_public_key=self.identity.sealing_public_key,
            markets=tuple(sorted(self.config.markets)),
            mediator_available=self.config.has_role("mediator"),
            listen_addrs=tuple(self.net.listen_addrs()),
            predecessor=self._handover[0] if self._handover else None,
            predecessor_signature=self._handover[1] if self._handover else b"",
            created_at=now_ms,
            expires_at=now_ms + NODE_RECORD_LIFETIME_MS,
            nonce=secrets.randbits(63),
        )

    async def _wait_for_first_mesh(self) -> None:
        if not self.config.bootstrap + self.config.bootstrap_file_peers:
            return
        topics = [str(MarketTopic(market)) for market in self.config.markets]
        with trio.move_on_after(FIRST_MESH_TIMEOUT_S) as waited:
            while not all(self.net.mesh_peers(topic) for topic in topics):
                await trio.sleep(MESH_POLL_INTERVAL_S)
        if waited.cancelled_caught:
            event(
                log, "mesh.not_ready", logging.WARNING, topics=topics, after_s=FIRST_MESH_TIMEOUT_S
            )

    def _offer_snapshot(self, markets: Sequence[str]) -> list[bytes]:
        """What a syncing peer gets: the fresh offers we hold on `markets`, our NodeRecord
        (signed now) and the fresh NodeRecords we hold."""
        now_ms = self._clock_ms()
        oldest_ms = now_ms - ENVELOPE_MAX_AGE_MS + SYNC_FRESHNESS_MARGIN_MS
        ours = self.identity.sign_envelope(self._node_record(now_ms), now_ms)
        records = [envelope for address, envelope in self._record_envelopes.items()
                   if address != self.identity.address]
        offers = [envelope for market in markets for envelope in self.book.offers(market)]
        return [ours.encode()] + [
            envelope.encode() for envelope in records + offers
            if envelope.published_at >= oldest_ms
        ]

    async def _publish(self, body: wire.Message) -> None:
        envelope = self.identity.sign_envelope(body, self._clock_ms())
        if isinstance(body, wire.ResourceOffer | wire.JobOffer):
            self.book.add(envelope, self._clock_ms())
        elif isinstance(body, wire.Cancel):
            self.book.cancel(envelope, self._clock_ms())
        await self.net.publish(envelope)

    async def _publish_node_record(self) -> None:
        # A newcomer learns our record (and every fresh one we hold) by offer sync when it
        # connects, so a new peer needs no network-wide re-publication: at 50 nodes starting
        # together that was one record per node every 2 s, gossiped to all.
        while True:
            await self._publish(self._node_record(self._clock_ms()))
            await trio.sleep(NODE_RECORD_MIN_GAP_S)
            with trio.move_on_after(NODE_RECORD_INTERVAL_S - NODE_RECORD_MIN_GAP_S):
                await self._addrs_changed.wait()
            self._addrs_changed = trio.Event()

    async def _offer_capacity(self) -> None:
        capacity = await trio.to_thread.run_sync(detect_capacity, self.config.home)
        chain_ids = await self._offered_chain_ids()
        for market in self.config.markets:
            offer = resource_offer(
                provider=self.identity.address,
                market=market,
                capacity=capacity,
                modules=module_policy(self.config, self.modules).entries(),
                now_ms=self._clock_ms(),
                chain_ids=chain_ids,
                trusted_mediators=_checksummed(self.config.mediators),
                price_per_job_wei=self.config.price_per_job_wei,
            )
            await self._publish(offer)
            self._republisher.track(offer, self._clock_ms())
            self._own_offers.append(offer)
            event(log, "offer.published", offer=offer.cid, market=market, kind="resource")

    async def _health_changed(self) -> None:
        """After every probe round: a provider that cannot run jobs withdraws its offers (a
        client would only waste a match on it) and offers again once it can."""
        if not self.config.has_role("provider"):
            return
        why = self.health.why_no_jobs()
        if why is not None and self._own_offers:
            for offer in self._own_offers:
                self._republisher.untrack(offer.cid)
                await self._publish(wire.Cancel(
                    market=offer.market, offer_cid=offer.cid, owner=self.identity.address,
                    created_at=self._clock_ms(), nonce=secrets.randbits(63)))
            event(log, "offers.withdrawn", logging.WARNING, count=len(self._own_offers),
                  reason=why)
            self._own_offers.clear()
        elif why is None and not self._own_offers:
            await self._offer_capacity()

    async def _offered_chain_ids(self) -> tuple[int, ...]:
        """The chains our resource offers accept: those where our free deposit covers a deal's
        collateral when we start (all of them if none does: deals are then refused, saying
        so). Money stays on each deal's own chain, so a deposit on one cannot back another."""
        assert self.chains is not None, "the provider role opens the chains first"
        funded = [chain.chain_id for chain in self.chains.values()
                  if await chain.free_balance() >= DEFAULT_COLLATERAL_WEI]
        return tuple(sorted(funded)) or self.chains.ids

    async def _republish_own_offers(self) -> None:
        while True:
            for offer in self._republisher.take_due(self._clock_ms()):
                await self._publish(offer)
            next_due = self._republisher.next_due_ms()
            delay_s = PUBLISHER_MAX_SLEEP_S
            if next_due is not None:
                delay_s = min(delay_s, max(0.0, (next_due - self._clock_ms()) / 1000))
            await trio.sleep(delay_s)

    # --- what the network tells us -------------------------------------------------------

    async def _consume_events(self) -> None:
        async for net_event in self.net.events:
            self._apply(net_event)

    def _apply(self, net_event: NetEvent) -> None:
        now_ms = self._clock_ms()
        if isinstance(net_event, OfferReceived):
            outcome = self.book.add(net_event.envelope, now_ms)
            if outcome is AddOutcome.ADDED:
                body = net_event.envelope.body
                assert isinstance(body, wire.JobOffer | wire.ResourceOffer)  # all the book adds
                event(log, "offer.added", logging.DEBUG, offer=body.cid, market=body.market)
        elif isinstance(net_event, ProposalReceived):
            watch_proposal(self, net_event.envelope)
            if self.solver is not None:
                self.solver.observe(net_event.envelope)
            if self.client is not None:
                self.client.observe_proposal(net_event.envelope)
        elif isinstance(net_event, CancelReceived):
            self.book.cancel(net_event.envelope, now_ms)
        elif isinstance(net_event, NodeRecordReceived):
            record = net_event.envelope.body
            assert isinstance(record, wire.NodeRecord)
            if record.address in self.successors:
                return  # a retired key's record: its successor speaks for it now
            known = self.node_records.get(record.address)
            if known is None or known.created_at < record.created_at:
                self.node_records[record.address] = record
                self._record_envelopes[record.address] = net_event.envelope
            if record.predecessor is not None and record.predecessor not in self.successors:
                self.successors[record.predecessor] = record.address
                self.node_records.pop(record.predecessor, None)
                self._record_envelopes.pop(record.predecessor, None)
                event(log, "node.key_rotated", retired=record.predecessor,
                      successor=record.address)
        elif isinstance(net_event, PeerJoined):
            event(log, "peer.joined", logging.DEBUG, peer=str(net_event.peer_id))

    async def _sweep_expired(self) -> None:
        while True:
            await trio.sleep(EXPIRY_SWEEP_INTERVAL_S)
            now_ms = self._clock_ms()
            self.book.expire(now_ms)
            for address, record in list(self.node_records.items()):
                if record.expires_at <= now_ms:
                    del self.node_records[address]
                    self._record_envelopes.pop(address, None)

    # --- control interface --------------------------------------------------------------

    def control_handlers(self) -> dict[str, Handler]:
        return NodeControl(self).handlers()

def _nat_settings(config: NodeConfig) -> NatSettings:
    return NatSettings(
        relay=config.has_role("relay"),
        upnp=config.upnp,
        reservations=config.relay_reservations,
        max_reservations=config.relay_max_reservations,
        max_circuits=config.relay_max_circuits,
        circuit_duration_s=config.relay_circuit_duration_s,
        circuit_bytes=config.relay_circuit_bytes,
    )


def _checksummed(addresses: Sequence[str]) -> tuple[str, ...]:
    from eth_utils import to_checksum_address

    return tuple(to_checksum_address(address) for address in addresses)


async def _close_at_exit(store: DealStore) -> None:
    try:
        await trio.sleep_forever()
    finally:
        store.close()


async def _cancel_on_signals(cancel_scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            event(log, "node.stopping", signal=signal.Signals(signum).name)
            cancel_scope.cancel()
            return


async def run_node(config: NodeConfig, password: PasswordSource | None = None) -> None:
    """Run a node with `config` until SIGINT or SIGTERM, as the keystore in its home (unlocked
    with `password` when encrypted; a new one is made, encrypted if `password` gives one).

    Raises:
        HomeLocked: another node runs with this home; nothing in the home was touched.
    """
    # Deal terms, signatures and outputs are private: every file the node creates (the
    # database's WAL and shared-memory files too) is its user's alone.
    os.umask(0o077)
    # Before anything reads or writes the home: a second node must not clean up the first's
    # jobs, open its database or take its socket.
    lock = HomeLock.acquire(config.home)
    try:
        await _run_locked(config, password)
    finally:
        lock.release()


async def _run_locked(config: NodeConfig, password: PasswordSource | None) -> None:
    configure_logging(config.log_level)
    identity = await trio.to_thread.run_sync(
        Identity.load_or_create, config.keystore_dir, password
    )
    node = Node(config, identity)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_cancel_on_signals, nursery.cancel_scope)
            await nursery.start(node.run)
    except BaseExceptionGroup as group:
        # A setting found wrong only at start (a chain reporting another chain ID, a missing
        # contract address) or a damaged database is the user's to fix: say so plainly, not
        # as a task traceback.
        leaves = list(_leaves(group))
        if leaves and all(isinstance(leaf, ConfigError | StoreError) for leaf in leaves):
            raise leaves[0] from None
        raise
    event(log, "node.stopped")


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterator[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc
