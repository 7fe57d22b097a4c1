"""The gossip network service: host + tuned GossipSub + validators + discovery, as one trio task.

    net = GossipNet(identity, listen_addrs=["/ip4/0.0.0.0/tcp/4001"], bootstrap=[...])
    await nursery.start(net.run)          # returns once listening and subscribed
    await net.publish(envelope)
    async for event in net.events: ...    # OfferReceived, CancelReceived, PeerJoined, ...

Only envelopes that passed `validate_gossip` reach `events`; everything dropped is counted by
reason in `statistics()` and graded against the forwarding peer through `report_peer`.
"""

from __future__ import annotations

import collections
import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

import trio
from libp2p.network.exceptions import SwarmException
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11
from libp2p.pubsub.pb import rpc_pb2
from libp2p.tools.anyio_service import background_trio_service

from lilypad_p2p import wire
from lilypad_p2p.clock import wall_clock_ms
from lilypad_p2p.identity import Identity
from lilypad_p2p.market import ReplayGuard
from lilypad_p2p.net import _params as params
from lilypad_p2p.net._admission import LIMIT_NAMES, Admission, NetLimits
from lilypad_p2p.net._containment import StreamBudgetExceeded, contain_stream_handlers
from lilypad_p2p.net._discovery import Discovery
from lilypad_p2p.net._enforcer import Enforcer
from lilypad_p2p.net._errors import CannotListen, NetError, NotListening, PublishError, sole_leaf
from lilypad_p2p.net._events import ConnectionEvents, NetEvent, PeerJoined, PeerLeft, event_for
from lilypad_p2p.net._host import (
    DEFAULT_MUXERS,
    Muxer,
    build_host,
    parse_multiaddrs,
    refuse_taken_ports,
)
from lilypad_p2p.net._levers import (
    ReportedScorer,
    TunedGossipSub,
    cache_host_addrs,
    message_id,
)
from lilypad_p2p.net._mesh import DEFAULT_MESH_DEGREE, MeshDegree, score_params
from lilypad_p2p.net._nat import NatService, NatSettings
from lilypad_p2p.net._peer_actions import (
    DropReason,
    PeerAction,
    action_for,
    disconnects,
    invalid_message_weight,
)
from lilypad_p2p.net._pubsub_levers import TunedPubsub
from lilypad_p2p.net._state import NetStatistics, PeerState
from lilypad_p2p.net._streams import DealStreams
from lilypad_p2p.net._swarm_guard import guard_swarm
from lilypad_p2p.net._sync import OfferSync, next_pull_pause_s
from lilypad_p2p.net._topics import NODES_TOPIC, JobsTopic, MarketTopic, Topic
from lilypad_p2p.net._validation import (
    Accepted,
    Rejected,
    check_pulled,
    reason_for_wire_error,
    topic_for,
    validate_gossip,
)

logger = logging.getLogger(__name__)

# Validated envelopes waiting for the library to deliver them (normally one at a time; the
# bound only matters if the library drops a validated message before delivery).
_MAX_PENDING_DELIVERIES = 1024


class GossipNet:
    """A node's gossip network. Start with `await nursery.start(net.run)`.

    Args:
        identity: the node's key; its secp256k1 key pair is the libp2p identity.
        listen_addrs: multiaddrs to listen on (e.g. `/ip4/0.0.0.0/tcp/4001`).
        bootstrap: multiaddrs with `/p2p/<peer id>` to join through.
        markets: markets to subscribe to at start (more with `subscribe_market`); a node that
            only publishes into its markets (a provider) subscribes to none.
        job_markets: markets whose job offers we receive too (a solver; a client publishes
            its own to the job followers it is connected to).
        followers: the peers known to follow our markets (base58 peer ID -> listen
            addresses, from NodeRecords): discovery keeps connections to some of them, a mesh
            degree's worth if we follow too, else `PUBLISHER_FOLLOWER_PEERS`.
        muxers: stream multiplexers offered, in order of preference.
        clock_ms: the wall clock signed timestamps are checked against.
        target_connections: connections discovery keeps.
        offer_snapshot: our current offer envelopes for some markets (with job offers or
            not), served to peers that connect so they need not wait for re-publication.
        mesh_degree: GossipSub D / D_low / D_high.
        nat: relay service and reservations (`_nat.py`); `nat.upnp` asks the router for a port.
        on_addrs_changed: called when our advertised addresses change (a relay reservation).
        limits: connection, stream and byte budgets, and how long a graylisted peer is banned.

    Raises:
        NetError: an address is not a multiaddr or a market name is invalid.
    """

    def __init__(
        self,
        identity: Identity,
        *,
        listen_addrs: Sequence[str],
        bootstrap: Sequence[str] = (),
        markets: Sequence[str] = (),
        job_markets: Sequence[str] = (),
        followers: Callable[[], Mapping[str, Sequence[str]]] = dict,
        muxers: Sequence[Muxer] = DEFAULT_MUXERS,
        clock_ms: Callable[[], int] = wall_clock_ms,
        target_connections: int = params.TARGET_CONNECTIONS,
        mesh_degree: MeshDegree = DEFAULT_MESH_DEGREE,
        offer_snapshot: Callable[[Sequence[str], bool], list[bytes]] | None = None,
        nat: NatSettings | None = None,
        on_addrs_changed: Callable[[], None] = lambda: None,
        limits: NetLimits | None = None,
    ) -> None:
        limits = limits or NetLimits()
        self._listen = parse_multiaddrs(listen_addrs, setting="listen")
        bootstrap_addrs = parse_multiaddrs(bootstrap, setting="bootstrap")
        self._markets = [MarketTopic(market) for market in markets]
        self._job_topics = [JobsTopic(market) for market in job_markets]
        self._clock_ms = clock_ms
        self._host = build_host(
            identity.libp2p_key_pair(),
            self._listen,
            muxers,
            target_connections=target_connections,
            limits=limits,
            enable_upnp=nat is not None and nat.upnp,
        )
        cache_host_addrs(self._host)
        self._admission = Admission(limits)
        self._peer_failures = 0
        # Before any handler is registered (NatService and Pubsub register theirs when built).
        contain_stream_handlers(self._host, self._on_peer_failure, self._admission)
        guard_swarm(self._host.get_network(), self._admission)
        self.nat = NatService(
            self._host, nat or NatSettings(), clock_ms=clock_ms, on_addrs_changed=on_addrs_changed
        )
        self._gossipsub = TunedGossipSub(
            protocols=[PROTOCOL_ID_V11, PROTOCOL_ID],
            degree=mesh_degree.target,
            degree_low=mesh_degree.low,
            degree_high=mesh_degree.high,
            heartbeat_initial_delay=params.HEARTBEAT_INITIAL_DELAY_S,
            heartbeat_interval=params.HEARTBEAT_INTERVAL_S,
            gossip_window=params.GOSSIP_WINDOW,
            gossip_history=params.GOSSIP_HISTORY,
            prune_back_off=params.PRUNE_BACKOFF_S,
            max_messages_per_topic_per_second=params.MAX_MESSAGES_PER_TOPIC_PER_SECOND,
            max_pending_messages_per_peer=params.MAX_PENDING_MESSAGES_PER_PEER,
            pending_messages_ttl=params.PENDING_MESSAGES_TTL_S,
            # Adaptive gossip rewrites the degree and heartbeat at run time; we want the
            # numbers above, which the benchmark measured.
            adaptive_gossip_enabled=False,
            # "Eclipse protection" grafts peers from new IPs while ignoring their backoff: the
            # GRAFT floods that provokes get us penalised by honest peers. Mesh diversity comes
            # from discovery's random peer choice instead.
            eclipse_protection_enabled=False,
        )
        self._scorer = ReportedScorer(score_params())
        self._gossipsub.scorer = self._scorer
        self._pubsub = TunedPubsub(
            self._host,
            self._gossipsub,
            msg_id_constructor=message_id,
            seen_ttl=params.SEEN_TTL_S,
            strict_signing=True,
            max_inbound_rpc_size=params.MAX_INBOUND_RPC_BYTES,
            on_delivered=self._on_delivered,
            on_malformed_rpc=self._on_malformed_rpc,
            is_graylisted=self._is_graylisted,
            on_peer_failure=self._on_peer_failure,
            # `_validate` checks every topic's envelopes are signed by their `from` peer.
            validators_check_source=True,
        )
        self._discovery = Discovery(
            self._host, bootstrap_addrs, target_connections=target_connections,
            followers=followers,
            min_followers=mesh_degree.target if markets else params.PUBLISHER_FOLLOWER_PEERS,
        )
        self._replay_guard = ReplayGuard()
        self._offer_snapshot = offer_snapshot or (lambda markets, with_jobs: [])
        self._sync = OfferSync(self._host, self._snapshot_for,
                               asker_holds_more=self._asker_holds_more)
        self._pull_pause_s = params.ANTI_ENTROPY_INTERVAL_S
        self._pulled_back: dict[ID, float] = {}
        # Installed before we listen, so a peer that connects at once can already pull.
        self._sync.install()
        self._has_open_deal: Callable[[str], bool] = lambda peer: False
        # The deal protocols, for the roles (`DealTransport`).
        self.deals = DealStreams(
            self._host,
            lambda peer, action, reason: self.report_peer(peer, action, reason),
            self._admission,
            self._is_deal_peer,
            connect=self.nat.connect,
        )
        self._enforcer = Enforcer(
            self._host,
            self._pubsub,
            self._admission,
            score=self.peer_score,
            is_graylisted=self._is_graylisted,
            protected=self._is_deal_peer,
            may_be_graylisted=self._scorer.may_score_below_zero,
            clock=time.monotonic,
        )
        self._events_send, self.events = trio.open_memory_channel[NetEvent](params.EVENT_BUFFER)
        self._host.get_network().register_notifee(ConnectionEvents(self._emit))
        self._pending: collections.OrderedDict[bytes, tuple[wire.SignedEnvelope, ID]] = (
            collections.OrderedDict()
        )
        self._subscribed: set[str] = set()
        self._nursery: trio.Nursery | None = None
        self._delivered = 0
        self._dropped: collections.Counter[str] = collections.Counter()
        self._reports: collections.Counter[str] = collections.Counter()
        self._reported_peers: set[ID] = set()
        self._event_drops = 0

    @property
    def peer_id(self) -> ID:
        return self._host.get_id()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen, subscribe, discover; `task_status.started()` once listening and subscribed.

        Raises:
            CannotListen: the host could not listen on an address.
        """
        try:
            refuse_taken_ports(self._listen)
            async with (
                self._host.run(self._listen),
                background_trio_service(self._pubsub),
                background_trio_service(self._gossipsub),
                trio.open_nursery() as nursery,
            ):
                self._check_listening()
                await self._pubsub.wait_until_ready()
                self._nursery = nursery
                await self._subscribe(NODES_TOPIC)
                for topic in self._markets + self._job_topics:
                    await self._subscribe(topic)
                await nursery.start(self._discovery.run)
                await nursery.start(self.nat.run)
                nursery.start_soon(self._enforcer.run)
                nursery.start_soon(self._anti_entropy)
                logger.info(
                    "gossip listening",
                    extra={"peer_id": str(self.peer_id), "addrs": self.listen_addrs()},
                )
                task_status.started()
                await trio.sleep_forever()
        except BaseExceptionGroup as group:
            # The library's nurseries wrap everything; surface our own error, or map the
            # library's listen failures, when that is all the group holds.
            ours = sole_leaf(group, NetError)
            if ours is not None:
                raise ours from group
            if sole_leaf(group, (OSError, SwarmException)) is not None:
                raise CannotListen(f"cannot listen on {self._listen}: {group!r}") from group
            raise
        except (OSError, SwarmException) as error:
            raise CannotListen(f"cannot listen on {self._listen}: {error}") from error
        finally:
            self._nursery = None

    def _check_listening(self) -> None:
        # py-libp2p logs a failed bind and carries on without the listener.
        listening = self._host.get_network().listeners
        missing = [str(addr) for addr in self._listen if str(addr) not in listening]
        if missing:
            raise CannotListen(f"cannot listen on {', '.join(missing)} (address in use or invalid)")

    def _require_running(self) -> trio.Nursery:
        if self._nursery is None:
            raise NotListening("the gossip network is not running")
        return self._nursery

    async def subscribe_market(self, market: str) -> None:
        """Receive (and forward) the resource offers, proposals and their cancellations of
        `market` (not its job offers).

        Raises:
            TopicError: the market name is invalid.
            NotListening: `run` has not started.
        """
        self._require_running()
        await self._subscribe(MarketTopic(market))

    async def _subscribe(self, topic: Topic) -> None:
        name = str(topic)
        if name in self._subscribed:
            return
        self._pubsub.set_topic_validator(name, self._validate, is_async_validator=False)
        await self._pubsub.subscribe(name)
        self._subscribed.add(name)

    async def publish(self, envelope: wire.SignedEnvelope, *, cancels_job_offer: bool = False
                      ) -> None:
        """Gossip `envelope` on the topic its body belongs to (a cancellation on its offer's:
        `cancels_job_offer`).

        Raises:
            PublishError: the envelope is invalid, too large, or the host failed.
            NotListening: `run` has not started.
        """
        self._require_running()
        data = envelope.encode()
        try:
            wire.open_envelope(data, now_ms=self._clock_ms())
            topic = str(topic_for(envelope, cancels_job_offer=cancels_job_offer))
        except (wire.WireError, NetError) as error:
            raise PublishError(f"refusing to publish an invalid envelope: {error}") from error
        try:
            await self._pubsub.publish(topic, data)
        except Exception as error:  # boundary: libp2p raises assorted types; map them here
            raise PublishError(f"publish on {topic} failed: {error!r}") from error

    def _validate(self, forwarder: ID, msg: rpc_pb2.Message) -> bool:
        try:
            verdict = validate_gossip(
                msg.data,
                tuple(msg.topicIDs),
                ID(msg.from_id),
                now_ms=self._clock_ms(),
                replay_guard=self._replay_guard,
            )
        except Exception:  # boundary: one here would cancel the library's whole pubsub
            logger.exception("gossip validator failed")
            self._dropped[DropReason.VALIDATOR_FAILED.value] += 1
            return False
        if isinstance(verdict, Accepted):
            self._pending[message_id(msg)] = (verdict.envelope, forwarder)
            while len(self._pending) > _MAX_PENDING_DELIVERIES:
                self._pending.popitem(last=False)
            return True
        self._dropped[verdict.reason.value] += 1
        action = action_for(verdict.reason)
        if action is not None and forwarder != self.peer_id:
            topic = msg.topicIDs[0] if len(msg.topicIDs) == 1 else None
            self.report_peer(forwarder, action, verdict.reason, topic=topic)
        logger.debug("dropped gossip from %s: %s (%s)", forwarder, verdict.reason, verdict.detail)
        return False

    def _on_delivered(self, msg: rpc_pb2.Message) -> None:
        pending = self._pending.pop(message_id(msg), None)
        if pending is None:
            return
        envelope, forwarder = pending
        self._delivered += 1
        self._emit(event_for(envelope, forwarder))

    async def _anti_entropy(self) -> None:
        """Every `ANTI_ENTROPY_INTERVAL_S` (jittered, so peers do not ask in step), pull what
        one random connected peer holds and we lack: offers re-published only every few
        minutes still reach every node soon after a partition heals or a copy is lost. While
        pulls answer with nothing new, the pause doubles up to `ANTI_ENTROPY_MAX_INTERVAL_S`."""
        while True:
            await trio.sleep(self._pull_pause_s * random.uniform(0.75, 1.25))
            peers = list(self._host.get_network().get_connections_map())
            # Only followers hold our markets' offers: ask one (any peer holds NodeRecords).
            candidates = [peer for peer in peers if self._follows(peer, self._markets)] or peers
            learnt = await self._pull_offers(random.choice(candidates)) if candidates else None
            self._pull_pause_s = next_pull_pause_s(self._pull_pause_s, learnt)

    def _asker_holds_more(self, peer_id: ID, markets: Sequence[str]) -> None:
        """A peer's sync request named envelopes we lack: pull from it now (a peer at most
        once per `ANTI_ENTROPY_INTERVAL_S`), so one pull in either direction reconciles both
        sides after a partition. Only for markets we follow: only then do its digests and ours
        cover the same envelopes."""
        if self._nursery is None or not set(markets) <= {t.market for t in self._markets}:
            return
        if not self._job_topics and self._follows(peer_id, map(JobsTopic, markets)):
            return  # what it holds more of is job offers, which we do not keep
        now = trio.current_time()
        if now - self._pulled_back.get(peer_id, -math.inf) < params.ANTI_ENTROPY_INTERVAL_S:
            return
        if len(self._pulled_back) >= params.PULL_BACK_MEMORY:
            self._pulled_back = {peer: at for peer, at in self._pulled_back.items()
                                 if now - at < params.ANTI_ENTROPY_INTERVAL_S}
        self._pulled_back[peer_id] = now
        self._nursery.start_soon(self._pull_offers, peer_id)

    def _follows(self, peer_id: ID, topics: Iterable[Topic]) -> bool:
        peer_topics = self._pubsub.peer_topics
        return any(peer_id in peer_topics.get(str(topic), ()) for topic in topics)

    def _snapshot_for(self, markets: Sequence[str], asker: ID | None) -> list[bytes]:
        """Our offers on `markets` for `asker` (None: to name what we hold when we ask): no job
        offers for a peer known to follow the markets but not their jobs (a client)."""
        with_jobs = (asker is None or self._follows(asker, map(JobsTopic, markets))
                     or not self._follows(asker, self._markets))
        return self._offer_snapshot(markets, with_jobs)

    async def _pull_offers(self, peer_id: ID) -> int | None:
        """Learn the offers and NodeRecords a peer holds that we lack, through the same checks
        as gossip; how many passed them, or None if the peer gave no valid answer.

        Invalid envelopes are the peer's fault, except those `check_pulled` skips.
        """
        markets = [topic.market for topic in self._markets]
        job_markets = {topic.market for topic in self._job_topics}
        try:
            envelopes = await self._sync.pull(peer_id, markets)
        except wire.WireError as error:
            reason = reason_for_wire_error(error)
            self._dropped[reason.value] += 1
            self.report_peer(peer_id, PeerAction.MID_TOLERANCE, reason)
            return None
        if envelopes is None:
            return None
        learnt = 0
        now_ms = self._clock_ms()
        for data in envelopes:
            verdict = check_pulled(data, markets=markets, job_markets=job_markets, now_ms=now_ms)
            if isinstance(verdict, Rejected):
                self._dropped[verdict.reason.value] += 1
                self.report_peer(peer_id, PeerAction.MID_TOLERANCE, verdict.reason)
            elif verdict is not None:
                self._emit(event_for(verdict.envelope, peer_id))
                learnt += 1
        if learnt:
            self._pull_pause_s = params.ANTI_ENTROPY_INTERVAL_S
        return learnt

    def _emit(self, event: NetEvent) -> None:
        if isinstance(event, PeerJoined) and self._nursery is not None:
            self._nursery.start_soon(self._pull_offers, event.peer_id)
        if isinstance(event, PeerLeft):
            self._discovery.peer_left()
        try:
            self._events_send.send_nowait(event)
        except trio.WouldBlock:
            self._event_drops += 1

    def _on_malformed_rpc(self, peer_id: ID) -> None:
        self._dropped[DropReason.MALFORMED_RPC.value] += 1
        self.report_peer(peer_id, PeerAction.FATAL, DropReason.MALFORMED_RPC)

    def _on_peer_failure(self, peer_id: ID, where: str, error: BaseException) -> None:
        """A contained failure in one of `peer_id`'s tasks: report it and close its connections.

        Not blacklisted: the failure may be our bug as much as the peer's bytes.
        """
        self._peer_failures += 1
        if isinstance(error, StreamBudgetExceeded):
            # Graded, not fatal: a busy honest client may briefly hold many job streams; a
            # flood of them takes the peer to the graylist, and the enforcer bans it.
            self.report_peer(peer_id, PeerAction.MID_TOLERANCE, str(error))
            return
        self.report_peer(peer_id, PeerAction.LOW_TOLERANCE, f"{where} failed: {error!r}"[:200])
        if self._nursery is not None:
            self._nursery.start_soon(self._disconnect, peer_id)

    def set_deal_peers(self, has_open_deal: Callable[[str], bool]) -> None:
        """Tell the network which peers (by peer ID) we have open deals with: only they may
        send large frames (`/lilypad/job/4` inputs), and trimming never closes them."""
        self._has_open_deal = has_open_deal

    def _is_deal_peer(self, peer_id: ID) -> bool:
        return self._has_open_deal(peer_id.to_base58())

    def _is_graylisted(self, peer_id: ID) -> bool:
        if not self._scorer.may_score_below_zero(peer_id):
            return False
        topics = list(self._subscribed)
        return bool(topics) and self._scorer.is_graylisted(peer_id, topics)

    def report_peer(
        self,
        peer_id: ID,
        action: PeerAction,
        reason: DropReason | str,
        *,
        topic: str | None = None,
    ) -> None:
        """The one path for misbehaviour: lowers the peer's GossipSub score (P4) by grade.

        A `FATAL` action also bans the peer (refused for `NetLimits.ban_s`) and closes its
        connections; a peer whose score falls below the graylist threshold gets the same from
        the enforcer's next sweep.

        Args:
            peer_id: the misbehaving peer.
            action: how bad it was.
            reason: why (a `DropReason` or a short text from a role).
            topic: the topic the misbehaviour happened on (default: the node-record topic).
        """
        reason_text = reason.value if isinstance(reason, DropReason) else reason
        self._reports[action.value] += 1
        self._reported_peers.add(peer_id)
        self._scorer.add_invalid_messages(
            peer_id, topic or str(NODES_TOPIC), invalid_message_weight(action)
        )
        logger.info(
            "peer reported",
            extra={"peer_id": str(peer_id), "action": action.value, "reason": reason_text},
        )
        if disconnects(action) and self._nursery is not None:
            self._enforcer.ban(peer_id)
            self._nursery.start_soon(self._disconnect, peer_id)
        self._enforcer.attend()

    async def _disconnect(self, peer_id: ID) -> None:
        try:
            await self._host.disconnect(peer_id)
        except Exception as error:  # boundary: a peer's connection may be in any state
            logger.debug("disconnect %s: %r", peer_id, error)

    def peer_score(self, peer_id: ID) -> float:
        """The peer's GossipSub score over our subscribed topics."""
        return self._scorer.score(peer_id, sorted(self._subscribed))

    def listen_addrs(self) -> list[str]:
        """Our listen addresses with `/p2p/<peer id>`, then our `/p2p-circuit` addresses."""
        direct = [f"{addr}/p2p/{self.peer_id}" for addr in self._host.get_transport_addrs()]
        return direct + self.nat.circuit_addrs()

    def peers(self) -> list[PeerState]:
        """Connected peers: addresses, the meshes they are in, their score."""
        network = self._host.get_network()
        peerstore = self._host.get_peerstore()
        states = []
        for peer_id in network.get_connections_map():
            try:
                addrs = tuple(str(addr) for addr in peerstore.addrs(peer_id))
            except KeyError:  # PeerStoreError: connected but not (yet) in the peerstore
                addrs = ()
            mesh = tuple(
                sorted(topic for topic, peers in self._gossipsub.mesh.items() if peer_id in peers)
            )
            states.append(PeerState(str(peer_id), addrs, True, mesh, self.peer_score(peer_id)))
        return states

    def topic_peers(self, topic: str) -> set[ID]:
        """The connected peers subscribed to `topic` (whom a publish without a mesh reaches)."""
        return set(self._pubsub.peer_topics.get(topic, ()))

    def mesh_peers(self, topic: str) -> set[ID]:
        """The peers in our GossipSub mesh for `topic`."""
        return set(self._gossipsub.mesh.get(topic, set()))

    async def wait_for_mesh_peer(self, peer_id: ID, topic: str, timeout_s: float) -> None:
        """Return once `peer_id` is in our mesh for `topic` (trio.TooSlowError after timeout)."""
        await self._pubsub.wait_for_mesh(peer_id, topic, timeout=timeout_s)

    async def connect(self, addr: str) -> None:
        """Dial a peer at a multiaddr with `/p2p/<peer id>`.

        Raises:
            NetError: the address is malformed or the dial failed.
        """
        (parsed,) = parse_multiaddrs([addr], setting="connect")
        try:
            info = info_from_p2p_addr(parsed)
            with trio.fail_after(params.DIAL_TIMEOUT_S):
                await self._host.connect(info)
        except Exception as error:  # boundary: TooSlowError, SwarmException, bad /p2p part
            raise NetError(f"dial {addr} failed: {error!r}") from error

    def statistics(self) -> NetStatistics:
        return NetStatistics(
            delivered=self._delivered,
            dropped=dict(self._dropped),
            reports=dict(self._reports),
            reported_peers=len(self._reported_peers),
            outbound_queue_drops=self._gossipsub.outbound_drops,
            event_queue_drops=self._event_drops,
            duplicates_skipped=self._pubsub.duplicates_skipped,
            graylisted_messages_ignored=self._pubsub.graylisted_messages_ignored,
            connected_peers=len(self._host.get_network().get_connections_map()),
            connections_accepted=self._admission.accepted,
            connections_refused=dict(self._admission.refused),
            banned_peers=self._admission.banned,
            trimmed_peers=self._enforcer.trimmed,
            peer_failures_contained=self._peer_failures,
            in_use=self._admission.in_use(),
            limits={name: getattr(self._admission.limits, name) for name in LIMIT_NAMES},
        )
