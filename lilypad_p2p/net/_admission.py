"""The node's resource budgets (go-libp2p's resource and connection managers, in small), pure.

`NetLimits` holds every number; `Admission` answers the questions a public node must ask
before it spends anything on a stranger, and counts its answers:

- connections: total, inbound and outbound, per IP, per /24 (IPv4) or /48 (IPv6) subnet and
  per peer; each admitted connection holds a `ConnectionTicket` until it is released, exactly
  once, on whichever path it ends;
- streams: open inbound streams per (peer, protocol);
- bytes in flight: request bytes being read or held per peer and for the whole node;
- bans: a peer that fell below the graylist threshold (or did something fatal) is refused
  until its ban expires; its score keeps decaying meanwhile, so it can come back;
- trimming: which peers to close when over the connection budget - lowest score first, never
  a peer we have an open deal with.

Time is an argument everywhere (`now` in seconds on any monotonic clock).
"""

from __future__ import annotations

import collections
import enum
import ipaddress
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

# The numeric budgets (each a positive number, each a `[limits]` setting).
LIMIT_NAMES: tuple[str, ...] = (
    "max_connections", "max_inbound", "max_outbound", "max_per_ip", "max_per_subnet",
    "max_per_peer", "max_streams_per_protocol_per_peer", "max_inflight_bytes_per_peer",
    "max_inflight_bytes", "ban_s",
)


@dataclass(frozen=True, slots=True)
class NetLimits:
    """Every budget of a public node; `Config` sets them (README "What a public node withstands").

    The defaults admit the ordinary churn of a bootstrap node (hundreds of peers over a day,
    dozens at once) and no more than a few connections from one host.
    """

    max_connections: int = 160
    max_inbound: int = 128
    max_outbound: int = 64
    max_per_ip: int = 8
    max_per_subnet: int = 32
    max_per_peer: int = 3
    # A job stream stays open while the job runs: room for a busy client's concurrent jobs.
    max_streams_per_protocol_per_peer: int = 32
    # Bytes of requests being read or held, per peer and for the node. A peer without an open
    # deal with us only ever gets small frames (`_deal_transport.MAX_SMALL_BYTES`).
    max_inflight_bytes_per_peer: int = 80 * 1024 * 1024
    max_inflight_bytes: int = 256 * 1024 * 1024
    # How long a peer that fell below the graylist threshold is refused.
    ban_s: float = 120.0
    # Addresses exempt from the per-IP and per-subnet budgets (go-libp2p's allowlist): this
    # machine's own processes - local tools, a co-located node, tests. The rest of 127/8 is not.
    allow_ips: tuple[str, ...] = ("127.0.0.1", "::1")

    def __post_init__(self) -> None:
        for name in LIMIT_NAMES:
            if getattr(self, name) <= 0:
                raise ValueError(f"net limit {name} must be positive, got {getattr(self, name)}")
        if self.max_inbound > self.max_connections or self.max_outbound > self.max_connections:
            raise ValueError("net limits: max_inbound and max_outbound must not exceed "
                             "max_connections")




class Refusal(enum.Enum):
    """Why a connection, stream or frame was refused (counted by value in `statistics`)."""

    CONNECTIONS = "connections"
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    PER_IP = "per_ip"
    PER_SUBNET = "per_subnet"
    PER_PEER = "per_peer"
    BANNED = "banned"
    STREAMS = "streams"
    BYTES_PEER = "bytes_peer"
    BYTES_NODE = "bytes_node"
    NO_DEAL = "no_deal"


def subnet_of(ip: str) -> str:
    """The /24 (IPv4) or /48 (IPv6) network an address belongs to; the address if unparsable."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


@dataclass(eq=False, slots=True)
class ConnectionTicket:
    """One admitted connection's share of the budgets; `Admission.release` returns it once."""

    inbound: bool
    ip: str | None
    peer: Hashable | None = None
    released: bool = False


@dataclass(slots=True)
class Admission:
    """Counts what is in use and answers admit/refuse. One per node; not thread-safe (trio)."""

    limits: NetLimits = field(default_factory=NetLimits)
    accepted: int = 0
    refused: collections.Counter[str] = field(default_factory=collections.Counter)
    _inbound: int = 0
    _outbound: int = 0
    _per_ip: collections.Counter[str] = field(default_factory=collections.Counter)
    _per_subnet: collections.Counter[str] = field(default_factory=collections.Counter)
    _per_peer: collections.Counter[Hashable] = field(default_factory=collections.Counter)
    _streams: collections.Counter[tuple[Hashable, str]] = field(
        default_factory=collections.Counter
    )
    _bytes_per_peer: collections.Counter[Hashable] = field(default_factory=collections.Counter)
    _bytes: int = 0
    _bans: dict[Hashable, float] = field(default_factory=dict)

    # --- connections --------------------------------------------------------------------

    @property
    def connections(self) -> int:
        return self._inbound + self._outbound

    def admit_connection(self, *, inbound: bool, ip: str | None) -> ConnectionTicket | Refusal:
        """Reserve a connection before any handshake; `ip` None (a relay, say) skips IP limits."""
        limits = self.limits
        refusal = None
        if self.connections >= limits.max_connections:
            refusal = Refusal.CONNECTIONS
        elif inbound and self._inbound >= limits.max_inbound:
            refusal = Refusal.INBOUND
        elif not inbound and self._outbound >= limits.max_outbound:
            refusal = Refusal.OUTBOUND
        elif ip in limits.allow_ips:
            ip = None  # counted in the totals only
        elif ip is not None and self._per_ip[ip] >= limits.max_per_ip:
            refusal = Refusal.PER_IP
        elif ip is not None and self._per_subnet[subnet_of(ip)] >= limits.max_per_subnet:
            refusal = Refusal.PER_SUBNET
        if refusal is not None:
            self.refused[refusal.value] += 1
            return refusal
        if inbound:
            self._inbound += 1
        else:
            self._outbound += 1
        if ip is not None:
            self._per_ip[ip] += 1
            self._per_subnet[subnet_of(ip)] += 1
        self.accepted += 1
        return ConnectionTicket(inbound=inbound, ip=ip)

    def attach_peer(self, ticket: ConnectionTicket, peer: Hashable) -> Refusal | None:
        """Bind an admitted connection to the peer its handshake proved; None if it may stay."""
        refusal = None
        if self.is_banned(peer):
            refusal = Refusal.BANNED
        elif self._per_peer[peer] >= self.limits.max_per_peer:
            refusal = Refusal.PER_PEER
        if refusal is not None:
            self.refused[refusal.value] += 1
            return refusal
        ticket.peer = peer
        self._per_peer[peer] += 1
        return None

    def release(self, ticket: ConnectionTicket) -> None:
        """Return a connection's share; a second release of one ticket does nothing."""
        if ticket.released:
            return
        ticket.released = True
        if ticket.inbound:
            self._inbound -= 1
        else:
            self._outbound -= 1
        if ticket.ip is not None:
            _decrement(self._per_ip, ticket.ip)
            _decrement(self._per_subnet, subnet_of(ticket.ip))
        if ticket.peer is not None:
            _decrement(self._per_peer, ticket.peer)

    # --- streams and bytes --------------------------------------------------------------

    def open_stream(self, peer: Hashable, protocol: str) -> bool:
        """Reserve one inbound stream of `protocol` from `peer`; False (counted) if over."""
        key = (peer, protocol)
        if self._streams[key] >= self.limits.max_streams_per_protocol_per_peer:
            self.refused[Refusal.STREAMS.value] += 1
            return False
        self._streams[key] += 1
        return True

    def close_stream(self, peer: Hashable, protocol: str) -> None:
        _decrement(self._streams, (peer, protocol))

    def reserve_bytes(self, peer: Hashable, count: int) -> Refusal | None:
        """Reserve `count` request bytes for `peer` before reading them; None if granted."""
        refusal = None
        if self._bytes_per_peer[peer] + count > self.limits.max_inflight_bytes_per_peer:
            refusal = Refusal.BYTES_PEER
        elif self._bytes + count > self.limits.max_inflight_bytes:
            refusal = Refusal.BYTES_NODE
        if refusal is not None:
            self.refused[refusal.value] += 1
            return refusal
        self._bytes_per_peer[peer] += count
        self._bytes += count
        return None

    def refuse(self, refusal: Refusal) -> None:
        """Count a refusal decided elsewhere (a large frame from a peer without a deal)."""
        self.refused[refusal.value] += 1

    def release_bytes(self, peer: Hashable, count: int) -> None:
        _decrement(self._bytes_per_peer, peer, count)
        self._bytes -= count

    @property
    def bytes_in_flight(self) -> int:
        return self._bytes

    def in_use(self) -> dict[str, int]:
        """What the budgets hold now, by the name of the limit that bounds it."""
        return {
            "max_connections": self.connections, "max_inbound": self._inbound,
            "max_outbound": self._outbound, "max_inflight_bytes": self._bytes,
            "streams": sum(self._streams.values()),
        }

    # --- bans ---------------------------------------------------------------------------

    def ban(self, peer: Hashable, now: float) -> None:
        """Refuse `peer` for `limits.ban_s` from `now` (a later ban extends it)."""
        self._bans[peer] = max(self._bans.get(peer, now), now + self.limits.ban_s)

    def is_banned(self, peer: Hashable) -> bool:
        """Whether `peer` is refused: from `ban` until `expire_bans` forgets it. Only that
        ends a ban, so whoever lifts what else the ban imposed (the enforcer: the pubsub
        blacklist) does it at the same moment; a peer let in sooner would reconnect still
        blacklisted in pubsub, its messages dropped unscored and ours never sent to it."""
        return peer in self._bans

    def expire_bans(self, now: float) -> list[Hashable]:
        """Forget expired bans; the peers whose ban ended."""
        ended = [peer for peer, until in self._bans.items() if now >= until]
        for peer in ended:
            del self._bans[peer]
        return ended

    @property
    def banned(self) -> int:
        return len(self._bans)


_Key = TypeVar("_Key", bound=Hashable)


def peers_to_trim(
    peers: Iterable[_Key],
    *,
    excess: int,
    score: Callable[[_Key], float],
    protected: Callable[[_Key], bool],
) -> list[_Key]:
    """The `excess` lowest-scored peers that are not protected (fewer if too few are not)."""
    if excess <= 0:
        return []
    candidates = sorted((peer for peer in peers if not protected(peer)), key=score)
    return candidates[:excess]


def _decrement(counter: collections.Counter[_Key], key: _Key, count: int = 1) -> None:
    counter[key] -= count
    if counter[key] <= 0:
        del counter[key]
