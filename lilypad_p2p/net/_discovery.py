"""Discovery: bootstrap dials plus a tiny peer exchange, so the mesh outlives its bootstrap.

A node dials its bootstrap addresses, then asks connected peers `/lilypad/px/1.0.0` for the
peers they know (peer ID + dialable addresses) and dials unknown ones until it holds
`TARGET_CONNECTIONS`. Every `DISCOVERY_INTERVAL_S` it checks again, so lost connections are
replaced from what it learnt, and bootstrap addresses are retried while it is short of peers;
once its targets are met it checks every `DISCOVERY_SATISFIED_INTERVAL_S`, and at once when a
peer leaves (`peer_left`).

Not every node follows the market topics (providers only publish into them), so random peers
are not enough: discovery also keeps `min_followers` connections to the peers `followers`
names (from their NodeRecords), beyond the target if need be. A follower's mesh and a
publisher's offers need them.

Why not the Kademlia DHT: the notes measured it working but noisy, and it needs a routing table
kept warm; a one-round peer exchange over connections we already hold is enough to find the
rest of a network that shares topics, and it is easy to bound (one request per round, a capped
response, a per-address redial backoff).

What it learns is bounded too, since any peer can answer with made-up peers: discovery keeps
only the latest answer of each of the last `KNOWN_ANSWERS` peers it asked (at most
`MAX_KNOWN_PEERS` peers, `MAX_ADDRS_PER_PEER` addresses each), so a peer that answers every
exchange with fresh IDs replaces its own entries and never holds more than one answer's worth.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import multiaddr
import trio
from libp2p.abc import IHost, INetStream
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo, info_from_p2p_addr
from libp2p.peer.peerstore import PeerStoreError

from lilypad_p2p.net._containment import reset_quietly
from lilypad_p2p.net._params import (
    DIAL_TIMEOUT_S,
    DISCOVERY_INTERVAL_S,
    DISCOVERY_SATISFIED_INTERVAL_S,
    MAX_PEER_EXCHANGE_BYTES,
    MAX_PEERS_PER_EXCHANGE,
    PEER_EXCHANGE_TIMEOUT_S,
    REDIAL_BACKOFF_S,
    TARGET_CONNECTIONS,
)

logger = logging.getLogger(__name__)

PEER_EXCHANGE_PROTOCOL = TProtocol("/lilypad/px/1.0.0")
_UNSPECIFIED_HOSTS = frozenset({"0.0.0.0", "::"})

# Peers whose latest answer we keep. A node asks one of its ~TARGET_CONNECTIONS peers a round;
# four times that keeps what it learnt from peers that have since left (the point of discovery:
# replacing lost connections) across a few turnovers of its whole peer set, while a table of
# at most MAX_KNOWN_PEERS (1,024) entries takes under 0.5 MB with two addresses an entry (about
# 2 MB with MAX_ADDRS_PER_PEER each) and a round's scan of it about 0.2 ms.
KNOWN_ANSWERS: Final = 4 * TARGET_CONNECTIONS
MAX_KNOWN_PEERS: Final = KNOWN_ANSWERS * MAX_PEERS_PER_EXCHANGE
# An entry's addresses kept (the first dialable ones), as many as a NodeRecord may list: one
# entry of a 64 KiB answer could otherwise carry thousands, each kept and each dialled.
MAX_ADDRS_PER_PEER: Final = 16


@dataclass(frozen=True, slots=True)
class KnownPeer:
    """A peer we could dial: its ID and the addresses it was reported at."""

    peer_id: ID
    addrs: tuple[multiaddr.Multiaddr, ...]


def dialable(addrs: Iterable[multiaddr.Multiaddr]) -> list[multiaddr.Multiaddr]:
    """Addresses worth sharing or dialling: TCP, not the unspecified host, no /p2p suffix."""
    out = []
    for addr in addrs:
        protocols = {p.name for p in addr.protocols()}
        if "tcp" not in protocols or "p2p-circuit" in protocols:
            continue
        host = addr.value_for_protocol("ip4") if "ip4" in protocols else None
        if host is None and "ip6" in protocols:
            host = addr.value_for_protocol("ip6")
        if host in _UNSPECIFIED_HOSTS:
            continue
        if "p2p" in protocols:
            addr = addr.decapsulate(multiaddr.Multiaddr(f"/p2p/{addr.value_for_protocol('p2p')}"))
        out.append(addr)
    return out


def encode_peer_list(peers: Sequence[KnownPeer]) -> bytes:
    """The peer exchange response: JSON, bounded by `MAX_PEERS_PER_EXCHANGE` entries."""
    entries = [
        {"id": peer.peer_id.to_base58(), "addrs": [str(addr) for addr in peer.addrs]}
        for peer in peers[:MAX_PEERS_PER_EXCHANGE]
        if peer.addrs
    ]
    return json.dumps(entries, separators=(",", ":")).encode()


def decode_peer_list(data: bytes) -> list[KnownPeer]:
    """Parse a peer exchange response; malformed entries are skipped, never raised."""
    try:
        entries = json.loads(data)
    except ValueError:
        return []
    if not isinstance(entries, list):
        return []
    peers = []
    for entry in entries[:MAX_PEERS_PER_EXCHANGE]:
        if isinstance(entry, dict):
            peer = known_peer(entry.get("id"), entry.get("addrs"))
            if peer is not None:
                peers.append(peer)
    return peers


def known_peer(raw_id: object, raw_addrs: object) -> KnownPeer | None:
    """A peer to dial from an untrusted base58 ID and address list; None without a valid ID or
    a dialable address."""
    if not isinstance(raw_id, str) or not isinstance(raw_addrs, list | tuple):
        return None
    try:
        peer_id = ID.from_base58(raw_id)
    except ValueError:  # not base58 (UnicodeEncodeError if not even ASCII)
        return None
    addrs = tuple(dialable(_parse_addrs(list(raw_addrs)))[:MAX_ADDRS_PER_PEER])
    return KnownPeer(peer_id, addrs) if addrs else None


def _parse_addrs(raw_addrs: list[object]) -> list[multiaddr.Multiaddr]:
    parsed = []
    for raw in raw_addrs:
        if not isinstance(raw, str):
            continue
        try:
            parsed.append(multiaddr.Multiaddr(raw))
        except ValueError:  # multiaddr wraps any bad part in StringParseError
            continue
    return parsed


class Discovery:
    """Keeps the host connected to `TARGET_CONNECTIONS` peers found from bootstrap and exchange,
    and to `min_followers` of the market followers `followers` names (peer ID -> addresses)."""

    def __init__(
        self,
        host: IHost,
        bootstrap: Sequence[multiaddr.Multiaddr],
        *,
        target_connections: int = TARGET_CONNECTIONS,
        followers: Callable[[], Mapping[str, Sequence[str]]] = dict,
        min_followers: int = 0,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self._host = host
        self._bootstrap = [info_from_p2p_addr(addr) for addr in bootstrap]
        self._target = target_connections
        self._followers = followers
        self._min_followers = min_followers
        self._clock = clock
        # Asked peer -> its latest answer, oldest asked first. Keyed by who answered, so one
        # peer's answers replace each other instead of piling up.
        self._answers: dict[ID, tuple[KnownPeer, ...]] = {}
        self._last_failure: dict[ID, float] = {}
        self._peer_left = trio.Event()
        self.dials_ok = 0
        self.dials_failed = 0
        self.exchanges = 0
        host.set_stream_handler(PEER_EXCHANGE_PROTOCOL, self._serve_exchange)

    def _connected(self) -> list[ID]:
        me = self._host.get_id()
        return [peer for peer in self._host.get_network().get_connections_map() if peer != me]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            satisfied = await self.step()
            with trio.move_on_after(
                DISCOVERY_SATISFIED_INTERVAL_S if satisfied else DISCOVERY_INTERVAL_S
            ):
                await self._peer_left.wait()
            self._peer_left = trio.Event()

    def peer_left(self) -> None:
        """A peer disconnected: look again now rather than at the next round."""
        self._peer_left.set()

    async def step(self) -> bool:
        """One round: top up from bootstrap and known peers, then learn more by exchange;
        whether both targets (connections, followers) were already met."""
        self._forget_old_failures()
        connected = set(self._connected())
        followers_missing = await self._dial_followers(connected)
        connected = set(self._connected())
        if len(connected) >= self._target:
            return not followers_missing
        if not connected:
            await self._dial_all(self._bootstrap)
            connected = set(self._connected())
        if connected:
            await self._exchange_with(random.choice(sorted(connected, key=str)))
        now = self._clock()
        candidates = [
            PeerInfo(peer.peer_id, list(peer.addrs))
            for peer in self.known_peers()
            if peer.peer_id not in connected and self._may_dial(peer.peer_id, now)
        ]
        candidates += [info for info in self._bootstrap if info.peer_id not in connected]
        random.shuffle(candidates)
        await self._dial_all(candidates[: max(self._target - len(connected), 0)])
        return False

    def known_peers(self) -> list[KnownPeer]:
        """The peers learnt by exchange (at most `MAX_KNOWN_PEERS`), each with the addresses
        of the latest answer that listed it."""
        peers: dict[ID, KnownPeer] = {}
        for answer in reversed(self._answers.values()):
            for peer in answer:
                peers.setdefault(peer.peer_id, peer)
        return list(peers.values())

    def _learn(self, source: ID, answer: Sequence[KnownPeer]) -> None:
        me = self._host.get_id()
        peers = tuple(peer for peer in answer[:MAX_PEERS_PER_EXCHANGE] if peer.peer_id != me)
        self._answers.pop(source, None)
        if peers:
            self._answers[source] = peers
        while len(self._answers) > KNOWN_ANSWERS:
            del self._answers[next(iter(self._answers))]

    def _forget_old_failures(self) -> None:
        now = self._clock()
        self._last_failure = {
            peer: failed_at for peer, failed_at in self._last_failure.items()
            if now - failed_at < REDIAL_BACKOFF_S
        }

    async def _dial_followers(self, connected: set[ID]) -> bool:
        """Dial followers (peer ID -> listen addresses) while fewer than `min_followers` are
        connected; their addresses are parsed only then. Whether any were missing."""
        if self._min_followers <= 0:
            return False
        followers = self._followers()
        connected_ids = {peer.to_base58() for peer in connected}
        missing = self._min_followers - len(connected_ids & followers.keys())
        if missing <= 0:
            return False
        me = self._host.get_id().to_base58()
        unconnected = [peer_id for peer_id in followers
                       if peer_id not in connected_ids and peer_id != me]
        random.shuffle(unconnected)
        candidates = []
        now = self._clock()
        for peer_id in unconnected:
            known = known_peer(peer_id, followers[peer_id])
            if known is not None and self._may_dial(known.peer_id, now):
                candidates.append(PeerInfo(known.peer_id, list(known.addrs)))
        await self._dial_all(candidates[:missing])
        return True

    def _may_dial(self, peer_id: ID, now: float) -> bool:
        failed_at = self._last_failure.get(peer_id)
        return failed_at is None or now - failed_at >= REDIAL_BACKOFF_S

    async def _dial_all(self, infos: Sequence[PeerInfo]) -> None:
        async with trio.open_nursery() as nursery:
            for info in infos:
                if info.peer_id != self._host.get_id():
                    nursery.start_soon(self._dial, info)

    async def _dial(self, info: PeerInfo) -> None:
        with trio.move_on_after(DIAL_TIMEOUT_S):
            try:
                await self._host.connect(info)
            except Exception as error:  # boundary: any dial failure (refused, handshake) is equal
                logger.debug("dial %s failed: %r", info.peer_id, error)
            else:
                self.dials_ok += 1
                return
        self.dials_failed += 1
        self._last_failure[info.peer_id] = self._clock()

    async def _exchange_with(self, peer_id: ID) -> None:
        with trio.move_on_after(PEER_EXCHANGE_TIMEOUT_S):
            try:
                stream = await self._host.new_stream(peer_id, [PEER_EXCHANGE_PROTOCOL])
                data = await _read_all(stream, MAX_PEER_EXCHANGE_BYTES)
                await stream.close()
            except Exception as error:  # boundary: the peer left or does not speak the protocol
                logger.debug("peer exchange with %s failed: %r", peer_id, error)
                return
            self.exchanges += 1
            self._learn(peer_id, decode_peer_list(data))

    def shareable_peers(self) -> list[KnownPeer]:
        """Connected peers with the addresses they told us (identify) or we dialled."""
        peerstore = self._host.get_peerstore()
        peers = []
        for peer_id in self._connected():
            try:
                addrs = tuple(dialable(peerstore.addrs(peer_id)))
            except PeerStoreError:
                continue
            if addrs:
                peers.append(KnownPeer(peer_id, addrs))
        random.shuffle(peers)
        return peers

    async def _serve_exchange(self, stream: INetStream) -> None:
        closed = False
        try:
            with trio.move_on_after(PEER_EXCHANGE_TIMEOUT_S):
                await stream.write(encode_peer_list(self.shareable_peers()))
                await stream.close()
                closed = True
        except Exception as error:  # boundary: the asking peer went away; nothing to do
            logger.debug("serving peer exchange failed: %r", error)
        finally:
            if not closed:  # timed out or failed: the stream must not outlive this handler
                await reset_quietly(stream)


async def _read_all(stream: INetStream, limit: int) -> bytes:
    data = bytearray()
    while len(data) <= limit:
        try:
            chunk = await stream.read(limit + 1 - len(data))
        except Exception:  # boundary: EOF, a reset, any muxer error ends the list
            break
        if not chunk:
            break
        data += chunk
    return bytes(data[:limit]) if len(data) <= limit else b""
