"""Build a Node from a NodeConfig and run it under one trio nursery until Ctrl-C.

The node owns the only nursery: the gossip network, the control interface, the loop that feeds
validated envelopes into the offer book, and the publisher of our own signed records and offers
all run as its children, so one cancellation (SIGINT, SIGTERM, SIGHUP or a crash of any
service) stops them all and the control socket is removed on the way out.

This module only wires the parts together. What the node says about itself is in
node_publish.py, who else is out there in node_directory.py, which market roles it runs in
node_roles.py, its own control methods in node_control.py and its probes in node_health.py.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import trio

from lilypad_p2p import wire
from lilypad_p2p.chain import RecordFeed
from lilypad_p2p.clock import Clock
from lilypad_p2p.config import JOB_FOLLOWING_ROLES, MARKET_FOLLOWING_ROLES, NodeConfig
from lilypad_p2p.control import Handler, serve_control
from lilypad_p2p.errors import ConfigError
from lilypad_p2p.health import Health
from lilypad_p2p.home import HomeLock
from lilypad_p2p.identity import Identity
from lilypad_p2p.keystore import PasswordSource
from lilypad_p2p.logs import configure_logging, event
from lilypad_p2p.market import AddOutcome, OfferBook
from lilypad_p2p.market._market_watch import MarketWatch
from lilypad_p2p.net import (
    CancelReceived,
    CannotListen,
    GossipNet,
    JobsTopic,
    MarketTopic,
    Muxer,
    NatSettings,
    NetEvent,
    NodeRecordReceived,
    OfferReceived,
    PeerJoined,
    ProposalReceived,
    preferring,
)
from lilypad_p2p.node_control import NodeControl
from lilypad_p2p.node_directory import NodeDirectory
from lilypad_p2p.node_health import Watchdog
from lilypad_p2p.node_market import publish_watched, watch_proposal
from lilypad_p2p.node_publish import Publisher
from lilypad_p2p.node_records import start_record_feeds
from lilypad_p2p.node_roles import start_market_roles
from lilypad_p2p.roles import (
    ClientRole,
    DealChains,
    MediatorRole,
    ProviderRole,
    Solver,
)
from lilypad_p2p.roles._module_setup import module_catalog
from lilypad_p2p.store import DealStore, StoreError

if TYPE_CHECKING:
    from lilypad_p2p.exec import Executor

log = logging.getLogger("lilypad_p2p.node")

# How often the offer book drops expired offers. Matching and the market view check each
# offer's expiry themselves, so the sweep only frees the book's room.
EXPIRY_SWEEP_INTERVAL_S = 5.0
# A node with bootstrap peers waits this long at most for a mesh before its first publication
# (published into an empty mesh, an offer would reach nobody until it is re-published).
FIRST_MESH_TIMEOUT_S = 10.0
MESH_POLL_INTERVAL_S = 0.05


class Node:
    """One participant: gossip network, offer book, control interface, and its roles."""

    def __init__(
        self,
        config: NodeConfig,
        identity: Identity,
        *,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self.config = config
        self.identity = identity
        # One clock for the node and its roles: deadlines move with trio's sleeps.
        self._clock_ms = clock_ms = clock_ms or Clock()
        self.net = GossipNet(
            identity,
            listen_addrs=config.listen,
            bootstrap=config.bootstrap + config.bootstrap_file_peers,
            # Providers and mediators publish into their markets without receiving every job's
            # offers, matches and cancels (DESIGN §4): most of a market's gossip per job.
            markets=config.markets if config.follows_markets else (),
            # Only solvers need every job offer; clients hear the matches (DESIGN §4).
            job_markets=config.markets if config.follows_jobs else (),
            followers=self._market_followers,
            clock_ms=clock_ms,
            offer_snapshot=lambda markets, with_jobs: self.publisher.offer_snapshot(
                markets, with_jobs),
            nat=_nat_settings(config),
            muxers=preferring(Muxer(config.muxer)),
            limits=config.net_limits,
            # A new relay address must reach peers before the next periodic NodeRecord.
            on_addrs_changed=lambda: self.publisher.addrs_changed.set(),
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
                solvers=self._solver_addresses,
            )
        # Who is out there: the freshest NodeRecord of each address (node_directory.py).
        self.directory = NodeDirectory()
        # What we say about ourselves: our NodeRecord and resource offers (node_publish.py).
        self.publisher = Publisher(self)
        # The market roles need the chains and the database; both open in `run`.
        self.chains: DealChains | None = None
        self.store: DealStore | None = None
        self.client: ClientRole | None = None
        self.provider: ProviderRole | None = None
        self.mediator: MediatorRole | None = None
        # The Docker executor of each role that connected one (their runs and pulls are metrics).
        self.executors: dict[str, Executor] = {}
        self._started_at = trio.current_time()
        # Chain, Docker and disk faults (health.py): reported, retried, never fatal.
        self.health = Health()
        self._watchdog = Watchdog(
            self.health, home=config.home, chains=lambda: self.chains,
            docker=config.has_role("provider") or config.has_role("mediator"),
            clock_ms=clock_ms, react=self.publisher.health_changed,
        )
        self.handlers = self.control_handlers()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            # First, so that `status` tells what the node waits for (a chain that does not
            # answer yet); the roles' methods are added once they run.
            await nursery.start(serve_control, self.config.control_socket,
                                self.config.control_token_file, self.handlers)
            if self.config.metrics_listen is not None:
                # Early too: probes see /healthz, and /readyz says what the node waits for.
                await self._start_observe(nursery, self.config.metrics_listen)
            if any(self.config.has_role(r)
                   for r in ("client", "provider", "mediator", "chain-bridge")):
                await start_market_roles(self, nursery)
            if self.solver is not None or self.chains is not None:
                start_record_feeds(nursery, self.records, self.config, self.chains)
            try:
                await nursery.start(self.net.run)
            except CannotListen as exc:
                raise ConfigError(f"listen (--listen): {exc}; give a free port on an address "
                                  "of this machine") from None
            nursery.start_soon(self._consume_events)
            nursery.start_soon(self._sweep_expired)
            await self._wait_for_first_mesh()
            nursery.start_soon(self.publisher.publish_node_record)
            if self.chains is not None:
                # Probes first, then reacts: a provider offers only once it can run jobs.
                nursery.start_soon(self._watchdog.run)
            nursery.start_soon(self.publisher.republish_own_offers)
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
        try:
            token = None if is_loopback(host) else load_or_create_token(token_file)
        except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
            raise ConfigError(f"metrics_listen {listen}: cannot use the token file ({exc}); "
                              f"fix it, or delete {token_file} to have a new one made") from None
        try:
            bound = await nursery.start(
                ObserveService(self.handlers, token=token).run, host, int(port)
            )
        except OSError as exc:
            raise ConfigError(
                f"metrics_listen {listen}: cannot listen ({exc.strerror}); choose a free "
                "HOST:PORT or leave it out"
            ) from None
        event(log, "observe.listening", url=f"http://{listen.rpartition(':')[0]}:{bound}/",
              token_file=str(token_file) if token else None)

    async def _wait_for_first_mesh(self) -> None:
        if not self.config.bootstrap + self.config.bootstrap_file_peers:
            return
        config = self.config
        # A follower publishes through its mesh; a publisher to whichever followers it knows.
        waits = [(str(MarketTopic(market)),
                  self.net.mesh_peers if config.follows_markets else self.net.topic_peers)
                 for market in config.markets]
        if config.publishes_jobs_only:
            waits += [(str(JobsTopic(market)), self.net.topic_peers) for market in config.markets]
        topics = [topic for topic, _ in waits]
        with trio.move_on_after(FIRST_MESH_TIMEOUT_S) as waited:
            while not all(peers(topic) for topic, peers in waits):
                await trio.sleep(MESH_POLL_INTERVAL_S)
        if waited.cancelled_caught:
            event(
                log, "mesh.not_ready", logging.WARNING, topics=topics, after_s=FIRST_MESH_TIMEOUT_S
            )

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
            self.directory.observe(net_event.envelope)
        elif isinstance(net_event, PeerJoined):
            event(log, "peer.joined", logging.DEBUG, peer=str(net_event.peer_id))

    async def _sweep_expired(self) -> None:
        while True:
            await trio.sleep(EXPIRY_SWEEP_INTERVAL_S)
            now_ms = self._clock_ms()
            self.book.expire(now_ms)
            self.directory.expire(now_ms)

    def _market_followers(self) -> dict[str, tuple[str, ...]]:
        """Nodes whose records say they follow one of our markets (MARKET_FOLLOWING_ROLES), or
        its job offers (JOB_FOLLOWING_ROLES) if we post jobs without following them, so that
        ours reach them: peer ID -> listen addresses."""
        config = self.config
        markets = set(config.markets)
        roles = JOB_FOLLOWING_ROLES if config.publishes_jobs_only else MARKET_FOLLOWING_ROLES
        return {record.peer_id: record.listen_addrs
                for record in self.directory.records.values()
                if markets.intersection(record.markets) and roles.intersection(record.roles)}

    # --- control interface --------------------------------------------------------------

    def _solver_addresses(self) -> list[str]:
        """The other solvers of our markets that we know of (they rank proposal publishing)."""
        markets = set(self.config.markets)
        return [record.address for record in self.directory.records.values()
                if "solver" in record.roles and markets.intersection(record.markets)]

    @property
    def node_records(self) -> dict[str, wire.NodeRecord]:
        return self.directory.records

    @property
    def successors(self) -> dict[str, str]:
        return self.directory.successors

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


async def _cancel_on_signals(cancel_scope: trio.CancelScope) -> None:
    # SIGHUP too: a closed terminal or a dropped ssh session then stops the node cleanly (its
    # jobs' containers removed, its deals saved) rather than killing it mid-write.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async for signum in signals:
            event(log, "node.stopping", signal=signal.Signals(signum).name)
            cancel_scope.cancel()
            return


async def run_node(config: NodeConfig, password: PasswordSource | None = None) -> None:
    """Run a node with `config` until SIGINT, SIGTERM or SIGHUP, as the keystore in its home
    (unlocked with `password` when encrypted; a new one is made, encrypted if `password`
    gives one).

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
