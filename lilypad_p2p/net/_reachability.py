"""Reachability and relay bookkeeping: pure decisions, no sockets, time passed in as `now_ms`.

Why our own dial-back check instead of py-libp2p's AutoNAT v1: its server dials back over the
connection the client already holds, so every server answers "reachable" (notes, libp2p.md
"NAT pieces"). Our `/lilypad/dialback/1` server opens a *fresh* TCP connection from a new
socket to the client's observed IP and its claimed listen ports: behind NAT nothing answers.

`ReachabilityTracker` turns the verdicts of distinct servers into PUBLIC / PRIVATE / UNKNOWN.
`RelayPlan` decides which relays to reserve on, when to renew and when to move.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from lilypad_p2p.net._errors import NetError

# A verdict counts for this long; a node whose network changes is re-judged after it.
VERDICT_TTL_MS = 10 * 60 * 1000
# Ports a client may ask to be dialled back on (bounds the work one request causes).
MAX_DIALBACK_PORTS = 4
MAX_DIALBACK_MESSAGE_BYTES = 256
# Renew a reservation this long before it expires.
RESERVATION_RENEW_MARGIN_MS = 5 * 60 * 1000
# A relay that refused or failed a reservation is not asked again for this long.
RELAY_RETRY_BACKOFF_MS = 30 * 1000


class DialbackError(NetError):
    """A dial-back request or response is malformed."""


class Reachability(enum.Enum):
    """Whether peers on the internet can dial us directly."""

    UNKNOWN = "unknown"
    PUBLIC = "public"
    PRIVATE = "private"


@dataclass(frozen=True, slots=True)
class DialbackRequest:
    """Client -> server: "dial my observed IP on these TCP ports"."""

    ports: tuple[int, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.ports) <= MAX_DIALBACK_PORTS:
            raise DialbackError(f"1 to {MAX_DIALBACK_PORTS} ports, got {len(self.ports)}")
        _require_tcp_ports(self.ports)

    def encode(self) -> bytes:
        return json.dumps({"ports": list(self.ports)}, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> DialbackRequest:
        return cls(_decode_ports(data, "ports", "dial-back request"))


@dataclass(frozen=True, slots=True)
class DialbackResponse:
    """Server -> client: the ports a fresh connection reached (empty: none did)."""

    reachable_ports: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.reachable_ports) > MAX_DIALBACK_PORTS:
            raise DialbackError("too many ports in a dial-back response")
        _require_tcp_ports(self.reachable_ports)

    @property
    def reachable(self) -> bool:
        return bool(self.reachable_ports)

    def encode(self) -> bytes:
        return json.dumps({"reachable": list(self.reachable_ports)}, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> DialbackResponse:
        return cls(_decode_ports(data, "reachable", "dial-back response"))


def _require_tcp_ports(ports: tuple[int, ...]) -> None:
    for port in ports:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise DialbackError(f"not a TCP port: {port!r}")


def _decode_ports(data: bytes, key: str, what: str) -> tuple[int, ...]:
    ports = _decode_object(data).get(key)
    if not isinstance(ports, list):
        raise DialbackError(f"{what} lacks a {key} list")
    return tuple(ports)


def _decode_object(data: bytes) -> dict[str, object]:
    if len(data) > MAX_DIALBACK_MESSAGE_BYTES:
        raise DialbackError(f"dial-back message over {MAX_DIALBACK_MESSAGE_BYTES} bytes")
    try:
        payload = json.loads(data)
    except ValueError as error:
        raise DialbackError(f"dial-back message is not JSON: {error}") from error
    if not isinstance(payload, dict):
        raise DialbackError("dial-back message is not a JSON object")
    return payload


@dataclass(frozen=True, slots=True)
class _Verdict:
    reachable: bool
    at_ms: int


@dataclass
class ReachabilityTracker:
    """The majority of fresh verdicts from distinct servers; a tie or none is UNKNOWN.

    One server is enough to decide: a private node usually knows only its bootstrap relay,
    and a lying server can at worst make us reserve a relay slot we did not need (PRIVATE) or
    skip one (PUBLIC) until another server's verdict outvotes it.
    """

    _verdicts: dict[str, _Verdict] = field(default_factory=dict)
    known_since_ms: int | None = None

    def record(self, server: str, reachable: bool, now_ms: int) -> Reachability:
        self._verdicts[server] = _Verdict(reachable, now_ms)
        state = self.state(now_ms)
        if state is not Reachability.UNKNOWN and self.known_since_ms is None:
            self.known_since_ms = now_ms
        return state

    def forget(self, server: str) -> None:
        self._verdicts.pop(server, None)

    def state(self, now_ms: int) -> Reachability:
        fresh = [v for v in self._verdicts.values() if now_ms - v.at_ms < VERDICT_TTL_MS]
        yes = sum(1 for v in fresh if v.reachable)
        no = len(fresh) - yes
        if yes > no:
            return Reachability.PUBLIC
        if no > yes:
            return Reachability.PRIVATE
        return Reachability.UNKNOWN

    def servers(self, now_ms: int) -> int:
        return sum(1 for v in self._verdicts.values() if now_ms - v.at_ms < VERDICT_TTL_MS)


@dataclass(frozen=True, slots=True)
class Reservation:
    relay: str
    expires_at_ms: int


@dataclass
class RelayPlan:
    """Which relays hold a reservation for us, and what to do next.

    Args:
        wanted: reservations to hold while private (more than one survives a relay's loss
            without a gap).
    """

    wanted: int
    _reservations: dict[str, Reservation] = field(default_factory=dict)
    _failed_at: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.wanted < 1:
            raise NetError(f"relay reservations wanted must be >= 1, got {self.wanted}")

    def reserved(self, relay: str, expires_at_ms: int) -> None:
        self._reservations[relay] = Reservation(relay, expires_at_ms)
        self._failed_at.pop(relay, None)

    def failed(self, relay: str, now_ms: int) -> None:
        self._reservations.pop(relay, None)
        self._failed_at[relay] = now_ms

    def lost(self, relay: str) -> None:
        """The relay disconnected: its reservation (and our circuit address there) is gone."""
        self._reservations.pop(relay, None)

    def active(self, now_ms: int) -> list[Reservation]:
        return [r for r in self._reservations.values() if r.expires_at_ms > now_ms]

    def to_reserve(
        self, reachability: Reachability, candidates: Sequence[str], now_ms: int
    ) -> list[str]:
        """Relays to (re-)reserve on now: renewals due first, then new ones up to `wanted`."""
        if reachability is not Reachability.PRIVATE:
            return []
        for relay in [r.relay for r in self._reservations.values() if r.expires_at_ms <= now_ms]:
            del self._reservations[relay]
        renew = [
            r.relay
            for r in self._reservations.values()
            if r.expires_at_ms - now_ms <= RESERVATION_RENEW_MARGIN_MS
        ]
        missing = self.wanted - len(self._reservations)
        fresh = [
            relay
            for relay in _unique(candidates)
            if relay not in self._reservations and self._may_retry(relay, now_ms)
        ]
        return renew + fresh[: max(missing, 0)]

    def _may_retry(self, relay: str, now_ms: int) -> bool:
        failed_at = self._failed_at.get(relay)
        return failed_at is None or now_ms - failed_at >= RELAY_RETRY_BACKOFF_MS


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
