"""NAT traversal on the gossip host: reachability, relay reservations, relayed dials, DCUtR.

    nat = NatService(host, NatSettings(relay=False), clock_ms=wall_clock_ms)
    await nursery.start(nat.run)
    nat.status()                       # reachability, reservations, circuit addresses, timeline
    await nat.connect(peer_id, addrs)  # direct addresses first, then /p2p-circuit ones
    await nat.ping(peer_id, addrs)     # one echo exchange, says whether it went relayed or direct

Every node serves `/lilypad/dialback/1` (see `_reachability`) and circuit relay v2's STOP side
(so it can accept relayed connections); a relay-role node also serves HOP within its limits.
A node that learns it is PRIVATE reserves slots on `NatSettings.reservations` relays among its
connected peers that speak HOP, renews them before they expire, and moves to another relay when
one disconnects. py-libp2p's DCUtR service runs on every node and tries to upgrade each relayed
connection to a direct one (TCP simultaneous open from the listen port); only the end the spec
names opens the session (`_hole_punch`).

Workarounds for py-libp2p 0.8.1, pinned exactly:
- AutoNAT v1 is not used (its dial-back reuses our connection: always "reachable").
- `host.connect()` refuses relay-only addresses, so relayed dials go through
  `CircuitV2Transport.dial` here.
- Reservations are made with `CircuitV2Transport._make_reservation` (one request, no refresher
  task: the library's refresher renews on the wall clock, never moves, and logs errors for lost
  relays); `RelayPlan` does renewal and moving instead.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import multiaddr
import trio
from libp2p.abc import IHost, INetStream
from libp2p.connection_types import ConnectionType
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.relay.circuit_v2.config import RelayConfig, RelayRole
from libp2p.relay.circuit_v2.protocol import PROTOCOL_ID as HOP_PROTOCOL
from libp2p.relay.circuit_v2.protocol import CircuitV2Protocol
from libp2p.relay.circuit_v2.resources import RelayLimits
from libp2p.relay.circuit_v2.transport import CircuitV2Transport
from libp2p.tools.anyio_service import background_trio_service

from lilypad_p2p.net._containment import reset_quietly
from lilypad_p2p.net._discovery import dialable
from lilypad_p2p.net._errors import DialError, NetError
from lilypad_p2p.net._hole_punch import OneSidedDCUtR
from lilypad_p2p.net._reachability import (
    MAX_DIALBACK_MESSAGE_BYTES,
    DialbackError,
    DialbackRequest,
    DialbackResponse,
    Reachability,
    ReachabilityTracker,
    RelayPlan,
)

logger = logging.getLogger(__name__)

DIALBACK_PROTOCOL = TProtocol("/lilypad/dialback/1")
PING_PROTOCOL = TProtocol("/lilypad/nat-ping/1")
PING_PAYLOAD_BYTES = 32
# A dial-back server's fresh TCP connect to one port must succeed within this.
DIALBACK_CONNECT_TIMEOUT_S = 3.0
# A client waits this long for a dial-back answer (covers MAX_DIALBACK_PORTS connects).
DIALBACK_REQUEST_TIMEOUT_S = 15.0
# Dial-backs served at once (each opens outgoing sockets for a stranger).
MAX_CONCURRENT_DIALBACKS = 8
# Probe every second until reachability is known, then re-check at this interval: half the
# verdicts' life (VERDICT_TTL_MS, 10 min), so a known state stays known. Every probe costs three
# peers a stream and a fresh TCP connection each; at 60 s that was 2.5 probes/s at 50 nodes.
PROBE_INTERVAL_UNKNOWN_S = 1.0
PROBE_INTERVAL_KNOWN_S = 300.0
# While still unknown (no answer, or a tie), peers already asked are asked again after this.
REASK_UNKNOWN_S = 10.0
# Distinct servers asked per probe round.
SERVERS_PER_PROBE = 3
# How often reservations, lost relays and direct upgrades are checked and hole punches started
# (a lost relay is found when its connection closes, so a tick only bounds how soon we move).
RELAY_TICK_S = 2.0
# The same on a node that is public and holds no relayed connection: nothing to reserve or
# upgrade, and a relayed peer arriving is driven at most this late.
RELAY_IDLE_TICK_S = 10.0
RESERVATION_TIMEOUT_S = 10.0
# A direct dial before falling back to a relay: short, a private address fails fast or hangs.
DIRECT_DIAL_TIMEOUT_S = 3.0
RELAYED_DIAL_TIMEOUT_S = 15.0
PING_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class NatSettings:
    """What this node does about NAT.

    Args:
        relay: serve circuit relay v2 HOP (bootstrap/relay nodes).
        reservations: relays a private node keeps a reservation on.
        max_reservations / max_circuits / circuit_duration_s / circuit_bytes: a relay's limits
            (reservations held, circuits open at once, per-circuit duration and data caps).
        reservation_ttl_s: how long a relay grants a reservation for.
        upnp: ask the router to map our listen port (UPnP IGD via miniupnpc).
    """

    relay: bool = False
    upnp: bool = False
    reservations: int = 2
    max_reservations: int = 128
    max_circuits: int = 64
    circuit_duration_s: int = 2 * 60 * 60
    circuit_bytes: int = 1 << 30
    reservation_ttl_s: int = 3600

    def __post_init__(self) -> None:
        numbers = (
            self.reservations, self.max_reservations, self.max_circuits,
            self.circuit_duration_s, self.circuit_bytes, self.reservation_ttl_s,
        )
        if any(isinstance(n, bool) or n < 1 for n in numbers):
            raise NetError(f"NAT settings must all be positive: {self}")


@dataclass(frozen=True, slots=True)
class PingResult:
    peer_id: str
    rtt_ms: float
    connection: str  # "relayed" or "direct": how the exchange travelled


@dataclass
class _Timeline:
    """Seconds since start at which each NAT milestone was first reached (benchmarks/nat.py)."""

    reachability_known: float | None = None
    first_reservation: float | None = None
    first_relayed_connection: float | None = None
    first_relayed_stream: float | None = None
    first_direct_upgrade: float | None = None


class NatService:
    """Reachability, relay service/reservations and DCUtR for one host. Start with `run`."""

    def __init__(
        self,
        host: IHost,
        settings: NatSettings,
        *,
        clock_ms: Callable[[], int],
        on_addrs_changed: Callable[[], None] = lambda: None,
    ) -> None:
        self._host = host
        self._settings = settings
        self._clock_ms = clock_ms
        self._on_addrs_changed = on_addrs_changed
        limits = RelayLimits(
            duration=settings.circuit_duration_s,
            data=settings.circuit_bytes,
            max_circuit_conns=settings.max_circuits,
            max_reservations=settings.max_reservations,
            reservation_ttl=settings.reservation_ttl_s,
        )
        self._protocol = CircuitV2Protocol(host, limits, allow_hop=settings.relay)
        roles = RelayRole.STOP | RelayRole.CLIENT
        if settings.relay:
            roles |= RelayRole.HOP
        self._transport = CircuitV2Transport(
            host, self._protocol, RelayConfig(roles=roles, limits=limits)
        )
        self._dcutr = OneSidedDCUtR(host)
        self._tracker = ReachabilityTracker()
        self._plan = RelayPlan(wanted=settings.reservations)
        self._dialback_limiter = trio.CapacityLimiter(MAX_CONCURRENT_DIALBACKS)
        self._relayed_peers: set[ID] = set()
        self._upgraded_peers: set[ID] = set()
        self._punching: set[ID] = set()
        self._circuit_addrs: tuple[str, ...] = ()
        self._started_at = trio.current_time()
        self.timeline = _Timeline()
        host.set_stream_handler(DIALBACK_PROTOCOL, self._serve_dialback)
        host.set_stream_handler(PING_PROTOCOL, self._serve_ping)

    @property
    def reachability(self) -> Reachability:
        return self._tracker.state(self._clock_ms())

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._started_at = trio.current_time()
        async with (
            background_trio_service(self._protocol),
            background_trio_service(self._dcutr),
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(self._probe_loop)
            nursery.start_soon(self._relay_loop)
            task_status.started()

    def _mark(self, milestone: str) -> None:
        if getattr(self.timeline, milestone) is None:
            setattr(self.timeline, milestone, round(trio.current_time() - self._started_at, 3))

    # --- reachability ---------------------------------------------------------------------

    def _listen_ports(self) -> tuple[int, ...]:
        ports = []
        for addr in self._host.get_transport_addrs():
            try:
                ports.append(int(addr.value_for_protocol("tcp")))
            except (LookupError, ValueError):  # not a TCP address
                continue
        return tuple(dict.fromkeys(ports))

    def _direct_peers(self) -> list[ID]:
        network = self._host.get_network()
        return [
            peer
            for peer, conns in network.get_connections_map().items()
            if any(conn.get_connection_type() is not ConnectionType.RELAYED for conn in conns)
        ]

    async def _probe_loop(self) -> None:
        asked: set[ID] = set()
        round_started = trio.current_time()
        while True:
            now_ms = self._clock_ms()
            known = self._tracker.state(now_ms) is not Reachability.UNKNOWN
            ports = self._listen_ports()
            servers = [peer for peer in self._direct_peers() if peer not in asked]
            if not servers and (known or trio.current_time() - round_started >= REASK_UNKNOWN_S):
                asked.clear()  # a fresh round with the same peers
                round_started = trio.current_time()
            if ports:
                async with trio.open_nursery() as nursery:
                    for server in servers[:SERVERS_PER_PROBE]:
                        asked.add(server)
                        nursery.start_soon(self._probe, server, ports)
            interval = PROBE_INTERVAL_UNKNOWN_S
            if self._tracker.state(self._clock_ms()) is not Reachability.UNKNOWN:
                interval = PROBE_INTERVAL_KNOWN_S
            await trio.sleep(interval)

    async def _probe(self, server: ID, ports: tuple[int, ...]) -> None:
        with trio.move_on_after(DIALBACK_REQUEST_TIMEOUT_S):
            try:
                stream = await self._host.new_stream(server, [DIALBACK_PROTOCOL])
                await stream.write(DialbackRequest(ports).encode() + b"\n")
                response = DialbackResponse.decode(await _read_line(stream))
                await stream.close()
            except Exception as error:  # boundary: no such protocol, peer gone, bad answer
                logger.debug("dial-back probe via %s failed: %r", server, error)
                return
            before = self._tracker.state(self._clock_ms())
            state = self._tracker.record(str(server), response.reachable, self._clock_ms())
            if state is not Reachability.UNKNOWN:
                self._mark("reachability_known")
            if state is not before:
                logger.info("reachability %s (dial-back by %s)", state.value, server)

    async def _serve_dialback(self, stream: INetStream) -> None:
        closed = False
        try:
            with trio.move_on_after(DIALBACK_REQUEST_TIMEOUT_S):
                request = DialbackRequest.decode(await _read_line(stream))
                observed = self._observed_ip(stream)
                if observed is not None:
                    reachable = []
                    async with self._dialback_limiter:
                        for port in request.ports:
                            if await _tcp_connects(observed, port):
                                reachable.append(port)
                    await stream.write(DialbackResponse(tuple(reachable)).encode() + b"\n")
                await stream.close()
                closed = True
        except Exception as error:  # boundary: a bad request or a vanished client: drop it
            logger.debug("serving dial-back failed: %r", error)
        finally:
            if not closed:  # timed out or failed: the stream must not outlive this handler
                await reset_quietly(stream)

    def _observed_ip(self, stream: INetStream) -> str | None:
        """The client's IP as our side of a *direct* connection sees it (relayed: None)."""
        peer = stream.muxed_conn.peer_id
        for conn in self._host.get_network().get_connections(peer):
            if conn.muxed_conn is stream.muxed_conn:
                if conn.get_connection_type() is ConnectionType.RELAYED:
                    return None
                break
        remote = stream.get_remote_address()
        return None if remote is None else remote[0]

    # --- relays -----------------------------------------------------------------------------

    async def _relay_loop(self) -> None:
        async with trio.open_nursery() as hole_punches:
            while True:
                await self._relay_step()
                for peer in self._dcutr.to_drive():
                    if peer not in self._punching:
                        self._punching.add(peer)
                        hole_punches.start_soon(self._punch_hole, peer)
                await trio.sleep(self._relay_pause_s())

    def _relay_pause_s(self) -> float:
        now_ms = self._clock_ms()
        if self._tracker.state(now_ms) is not Reachability.PUBLIC or self._plan.active(now_ms):
            return RELAY_TICK_S
        return RELAY_TICK_S if self._relayed_now() else RELAY_IDLE_TICK_S

    async def _punch_hole(self, peer: ID) -> None:
        try:
            await self._dcutr.initiate_hole_punch(peer)
        except Exception as error:  # boundary: a relayed peer may fail a session any way
            logger.debug("hole punch to %s failed: %r", peer, error)
        finally:
            self._punching.discard(peer)

    def _relay_candidates(self) -> list[ID]:
        peerstore = self._host.get_peerstore()
        candidates = []
        for peer in self._direct_peers():
            try:
                protocols = peerstore.get_protocols(peer)
            except KeyError:  # not identified yet (PeerStoreError)
                continue
            if HOP_PROTOCOL in protocols:
                candidates.append(peer)
        return candidates

    async def _relay_step(self) -> None:
        now_ms = self._clock_ms()
        connected = {str(peer) for peer in self._host.get_network().get_connections_map()}
        for reservation in self._plan.active(now_ms):
            if reservation.relay not in connected:
                logger.info("relay %s lost; moving", reservation.relay)
                self._plan.lost(reservation.relay)
        candidates = [str(peer) for peer in self._relay_candidates()]
        for relay in self._plan.to_reserve(self._tracker.state(now_ms), candidates, now_ms):
            await self._reserve(ID.from_base58(relay))
        self._refresh_circuit_addrs()
        self._note_upgrades()

    async def _reserve(self, relay: ID) -> None:
        with trio.move_on_after(RESERVATION_TIMEOUT_S):
            try:
                stream = await self._host.new_stream(relay, [HOP_PROTOCOL])
                ok = await self._transport._make_reservation(stream, relay)
                await stream.close()
            except Exception as error:  # boundary: the relay went away or refused the stream
                logger.debug("reservation on %s failed: %r", relay, error)
                ok = False
            if ok:
                expire_s = self._transport._reservations.get(relay, 0)
                self._plan.reserved(str(relay), int(expire_s) * 1000)
                self._mark("first_reservation")
                logger.info("reserved a relay slot on %s", relay)
                return
        self._plan.failed(str(relay), self._clock_ms())

    def _refresh_circuit_addrs(self) -> None:
        me = self._host.get_id()
        peerstore = self._host.get_peerstore()
        addrs = []
        for reservation in self._plan.active(self._clock_ms()):
            relay = ID.from_base58(reservation.relay)
            # The address our connection reached the relay at first: identify may report only
            # the relay's unspecified listen address (0.0.0.0), which dialable() drops.
            relay_addrs = dialable(
                addr
                for conn in self._host.get_network().get_connections(relay)
                if conn.get_connection_type() is not ConnectionType.RELAYED
                for addr in conn.get_transport_addresses()
            )
            with contextlib.suppress(Exception):  # the peerstore may have forgotten the relay
                relay_addrs += dialable(peerstore.addrs(relay))
            addrs += [f"{addr}/p2p/{relay}/p2p-circuit/p2p/{me}" for addr in relay_addrs]
        unique = tuple(dict.fromkeys(addrs))
        if unique != self._circuit_addrs:
            self._circuit_addrs = unique
            self._on_addrs_changed()

    def _note_upgrades(self) -> None:
        direct = set(self._direct_peers())
        for peer in self._relayed_peers & direct:
            if peer not in self._upgraded_peers:
                self._upgraded_peers.add(peer)
                self._mark("first_direct_upgrade")
                logger.info("connection to %s upgraded to direct", peer)
        for peer in self._relayed_now():
            self._relayed_peers.add(peer)
            self._mark("first_relayed_connection")

    def _relayed_now(self) -> list[ID]:
        """Peers we hold a relayed connection to (a direct one may be open beside it)."""
        return [
            peer
            for peer, conns in self._host.get_network().get_connections_map().items()
            if any(conn.get_connection_type() is ConnectionType.RELAYED for conn in conns)
        ]

    def circuit_addrs(self) -> list[str]:
        """Our `/p2p-circuit` addresses through the relays holding a reservation for us."""
        return list(self._circuit_addrs)

    # --- dialling and the ping exchange ---------------------------------------------------

    def connection_kind(self, peer: ID) -> str:
        """'direct' if any direct connection to `peer` is open, else 'relayed' or 'none'."""
        conns = self._host.get_network().get_connections(peer)
        if not conns:
            return "none"
        if any(conn.get_connection_type() is not ConnectionType.RELAYED for conn in conns):
            return "direct"
        return "relayed"

    async def connect(self, peer: ID, addrs: Sequence[str]) -> None:
        """Connect to `peer` unless already connected: direct addresses, then relayed ones.

        Raises:
            DialError: no address worked.
        """
        if self._host.get_network().get_connections(peer):
            return
        parsed = []
        for addr in addrs:
            try:
                parsed.append(multiaddr.Multiaddr(addr))
            except ValueError:  # a peer's bad address (StringParseError) is skipped, not fatal
                continue
        circuits = [a for a in parsed if "p2p-circuit" in {p.name for p in a.protocols()}]
        direct = dialable(a for a in parsed if a not in circuits)
        if direct:
            with trio.move_on_after(DIRECT_DIAL_TIMEOUT_S):
                try:
                    await self._host.connect(PeerInfo(peer, direct))
                    return
                except Exception as error:  # boundary: any direct failure: try the relays
                    logger.debug("direct dial %s failed: %r", peer, error)
        for circuit in circuits:
            with trio.move_on_after(RELAYED_DIAL_TIMEOUT_S):
                try:
                    await self._transport.dial(circuit)
                    self._relayed_peers.add(peer)
                    self._mark("first_relayed_connection")
                    return
                except Exception as error:  # boundary: this relay failed: try the next
                    logger.debug("relayed dial %s failed: %r", circuit, error)
        raise DialError(f"cannot reach {peer} at {list(addrs)}")

    async def ping(self, peer: ID, addrs: Sequence[str]) -> PingResult:
        """Connect if needed, then one echo exchange on `/lilypad/nat-ping/1`.

        Raises:
            DialError: the peer is unreachable or the exchange failed.
        """
        await self.connect(peer, addrs)
        kind = self.connection_kind(peer)
        payload = os.urandom(PING_PAYLOAD_BYTES)
        start = trio.current_time()
        try:
            with trio.fail_after(PING_TIMEOUT_S):
                stream = await self._host.new_stream(peer, [PING_PROTOCOL])
                await stream.write(payload)
                echoed = await _read_exact(stream, PING_PAYLOAD_BYTES)
                await stream.close()
        except Exception as error:  # boundary: timeout, reset, protocol refused
            raise DialError(f"ping {peer} failed: {error!r}") from error
        if echoed != payload:
            raise DialError(f"ping {peer}: echo does not match")
        if kind == "relayed":
            self._mark("first_relayed_stream")
        return PingResult(str(peer), round((trio.current_time() - start) * 1000, 2), kind)

    async def _serve_ping(self, stream: INetStream) -> None:
        closed = False
        try:
            with trio.move_on_after(PING_TIMEOUT_S):
                await stream.write(await _read_exact(stream, PING_PAYLOAD_BYTES))
                await stream.close()
                closed = True
        except Exception as error:  # boundary: the asker went away, or sent a short ping
            logger.debug("serving ping failed: %r", error)
        finally:
            if not closed:  # timed out or failed: the stream must not outlive this handler
                await reset_quietly(stream)

    def status(self) -> dict[str, Any]:
        now_ms = self._clock_ms()
        return {
            "reachability": self._tracker.state(now_ms).value,
            "dialback_servers": self._tracker.servers(now_ms),
            "relay_service": self._settings.relay,
            "reservations": [
                {"relay": r.relay, "expires_in_s": round((r.expires_at_ms - now_ms) / 1000)}
                for r in self._plan.active(now_ms)
            ],
            "circuit_addrs": list(self._circuit_addrs),
            "relayed_peers": sorted(str(p) for p in self._relayed_peers),
            "direct_upgraded_peers": sorted(str(p) for p in self._upgraded_peers),
            "timeline_s": {
                name: getattr(self.timeline, name) for name in _Timeline.__dataclass_fields__
            },
        }


async def _tcp_connects(ip: str, port: int) -> bool:
    """A fresh TCP connection (new socket, never a libp2p connection we hold) reaches ip:port."""
    with trio.move_on_after(DIALBACK_CONNECT_TIMEOUT_S):
        try:
            connection = await trio.open_tcp_stream(ip, port)
        except OSError:
            return False
        await connection.aclose()
        return True
    return False


async def _read_line(stream: INetStream) -> bytes:
    data = bytearray()
    while b"\n" not in data:
        if len(data) > MAX_DIALBACK_MESSAGE_BYTES:
            raise DialbackError("dial-back message too long")
        chunk = await stream.read(MAX_DIALBACK_MESSAGE_BYTES)
        if not chunk:
            raise DialbackError("dial-back stream closed mid-message")
        data += chunk
    return bytes(data.split(b"\n", 1)[0])


async def _read_exact(stream: INetStream, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = await stream.read(size - len(data))
        if not chunk:
            raise DialError("stream closed early")
        data += chunk
    return bytes(data)
