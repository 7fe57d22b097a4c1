import math
import os

import trio
from hypothesis import given
from hypothesis import strategies as st
from libp2p.crypto.secp256k1 import create_new_key_pair
from libp2p.peer.id import ID
from multiaddr import Multiaddr
from trio.testing import MockClock

from lilypad_p2p.net import KnownPeer
from lilypad_p2p.net._discovery import (
    KNOWN_ANSWERS,
    MAX_ADDRS_PER_PEER,
    MAX_KNOWN_PEERS,
    Discovery,
    decode_peer_list,
    dialable,
    encode_peer_list,
)
from lilypad_p2p.net._params import (
    DISCOVERY_INTERVAL_S,
    DISCOVERY_SATISFIED_INTERVAL_S,
    MAX_PEERS_PER_EXCHANGE,
    REDIAL_BACKOFF_S,
)
from lilypad_p2p.testing._spec_wire import peer_id_of


def _peer_id() -> ID:
    return ID.from_pubkey(create_new_key_pair().public_key)


def test_peer_list_round_trips():
    peers = [
        KnownPeer(_peer_id(), (Multiaddr("/ip4/127.0.0.1/tcp/4001"),)),
        KnownPeer(_peer_id(), (Multiaddr("/ip4/10.0.0.2/tcp/9"), Multiaddr("/ip6/::1/tcp/7"))),
    ]
    assert decode_peer_list(encode_peer_list(peers)) == peers


def test_peer_list_is_capped():
    address = (Multiaddr("/ip4/127.0.0.1/tcp/1"),)
    peers = [KnownPeer(_peer_id(), address) for _ in range(MAX_PEERS_PER_EXCHANGE + 5)]
    assert len(decode_peer_list(encode_peer_list(peers))) == MAX_PEERS_PER_EXCHANGE


def test_dialable_drops_unspecified_and_non_tcp_and_strips_p2p():
    peer = _peer_id()
    addrs = [
        Multiaddr("/ip4/0.0.0.0/tcp/4001"),
        Multiaddr("/ip6/::/tcp/4001"),
        Multiaddr("/ip4/127.0.0.1/udp/4001/quic-v1"),
        Multiaddr(f"/ip4/127.0.0.1/tcp/4001/p2p/{peer}"),
    ]
    assert dialable(addrs) == [Multiaddr("/ip4/127.0.0.1/tcp/4001")]


def test_a_peers_addresses_are_capped():
    addrs = [f"/ip4/10.0.0.{i}/tcp/4001" for i in range(MAX_ADDRS_PER_PEER + 20)]
    data = b'[{"id": "%s", "addrs": %s}]' % (_peer_id().to_base58().encode(),
                                             str(addrs).replace("'", '"').encode())
    [peer] = decode_peer_list(data)
    assert [str(addr) for addr in peer.addrs] == addrs[:MAX_ADDRS_PER_PEER]


def test_malformed_entries_are_skipped():
    good = _peer_id().to_base58()
    data = (
        b'[1, "x", {"id": 5, "addrs": []}, {"id": "not-a-peer", "addrs": ["/ip4/1.2.3.4/tcp/1"]},'
        b'{"id": "' + good.encode() + b'", "addrs": ["garbage", "/ip4/1.2.3.4/tcp/1", 7]}]'
    )
    peers = decode_peer_list(data)
    assert [str(peer.peer_id) for peer in peers] == [good]
    assert peers[0].addrs == (Multiaddr("/ip4/1.2.3.4/tcp/1"),)


@given(st.binary(max_size=300))
def test_random_bytes_never_raise(data):
    assert isinstance(decode_peer_list(data), list)


class _Host:
    """The few host calls discovery makes: dials succeed at once and are timed; no peer
    speaks peer exchange."""

    def __init__(self) -> None:
        self.me = _peer_id()
        self.connections: dict[ID, object] = {}
        self.dialled_at: list[float] = []

    def get_id(self) -> ID:
        return self.me

    def set_stream_handler(self, protocol, handler) -> None:
        pass

    def get_network(self):
        return self

    def get_connections_map(self) -> dict[ID, object]:
        return self.connections

    async def connect(self, info) -> None:
        self.dialled_at.append(trio.current_time())
        self.connections[info.peer_id] = object()

    async def new_stream(self, peer_id, protocols):
        raise ConnectionError("no peer exchange here")


async def test_discovery_rests_once_its_target_is_met_and_wakes_when_a_peer_leaves(
    autojump_clock: MockClock,
):
    host = _Host()
    bootstrap = [Multiaddr(f"/ip4/127.0.0.1/tcp/{4000 + i}/p2p/{_peer_id()}") for i in range(3)]
    discovery = Discovery(host, bootstrap, target_connections=2)  # type: ignore[arg-type]
    steps: list[float] = []
    step = discovery.step

    async def counted_step() -> bool:
        steps.append(trio.current_time())
        return await step()

    discovery.step = counted_step  # type: ignore[method-assign]
    async with trio.open_nursery() as nursery:
        await nursery.start(discovery.run)
        await trio.sleep(60)
        assert len(host.connections) == 3
        # Met at the second round; then one round per satisfied interval, not every 2 s.
        assert len(steps) <= 2 + 60 / DISCOVERY_SATISFIED_INTERVAL_S
        for peer in list(host.connections)[:2]:
            del host.connections[peer]
        left_at = trio.current_time()
        discovery.peer_left()
        await trio.sleep(1)
        assert host.dialled_at[-1] - left_at < DISCOVERY_INTERVAL_S
        assert len(host.connections) == 2
        nursery.cancel_scope.cancel()


def _fake_id() -> ID:
    # From the spec's ID derivation (fast): creating a key pair per fake would take minutes.
    return ID.from_base58(peer_id_of(os.urandom(32)))


def _fresh_answer() -> bytes:
    address = (Multiaddr("/ip4/10.9.9.9/tcp/4001"),)
    return encode_peer_list([KnownPeer(_fake_id(), address) for _ in range(MAX_PEERS_PER_EXCHANGE)])


class _Stream:
    def __init__(self, data: bytes) -> None:
        self._data = data

    async def read(self, n: int) -> bytes:
        chunk, self._data = self._data[:n], self._data[n:]
        return chunk

    async def close(self) -> None:
        pass


class _FloodedHost(_Host):
    """Every connected peer answers each exchange with `MAX_PEERS_PER_EXCHANGE` made-up peers
    (unless `answers` fixes its answer), and every dial fails, as made-up peers' do."""

    def __init__(self) -> None:
        super().__init__()
        self.answers: dict[ID, bytes] = {}
        self.dials = 0

    async def connect(self, info) -> None:
        self.dials += 1
        raise ConnectionError("nobody there")

    async def new_stream(self, peer_id, protocols):
        return _Stream(self.answers.get(peer_id) or _fresh_answer())


async def test_a_peer_answering_fresh_ids_holds_one_answer_and_leaves_honest_ones_alone():
    host = _FloodedHost()
    hostile, honest = _fake_id(), _fake_id()
    honest_peers = [KnownPeer(_fake_id(), (Multiaddr("/ip4/10.1.1.1/tcp/4001"),))]
    host.answers[honest] = encode_peer_list(honest_peers)
    host.connections = {hostile: object(), honest: object()}
    now = 0.0
    discovery = Discovery(host, [], target_connections=8, clock=lambda: now)  # type: ignore[arg-type]
    for _ in range(100):
        await discovery.step()
        now += DISCOVERY_INTERVAL_S
    assert discovery.exchanges == 100
    known = {peer.peer_id for peer in discovery.known_peers()}
    assert len(known) <= len(honest_peers) + MAX_PEERS_PER_EXCHANGE
    assert honest_peers[0].peer_id in known


async def test_known_peers_keep_the_latest_answers_of_the_last_peers_asked():
    host = _FloodedHost()
    sources = [_fake_id() for _ in range(KNOWN_ANSWERS + 1)]
    # A made-up peer `sources[1]` (then asked) listed first, and `sources[-1]` lists it again.
    first = KnownPeer(_fake_id(), (Multiaddr("/ip4/10.2.2.2/tcp/1"),))
    again = KnownPeer(first.peer_id, (Multiaddr("/ip4/10.3.3.3/tcp/1"),))
    host.answers[sources[1]] = encode_peer_list([first])
    host.answers[sources[-1]] = encode_peer_list([again])
    now = 0.0
    discovery = Discovery(host, [], target_connections=2, clock=lambda: now)  # type: ignore[arg-type]
    asked_first: set[ID] = set()
    for source in sources:
        host.connections = {source: object()}
        await discovery.step()
        asked_first = asked_first or {peer.peer_id for peer in discovery.known_peers()}
        now += DISCOVERY_INTERVAL_S
    assert len(asked_first) == MAX_PEERS_PER_EXCHANGE
    known = discovery.known_peers()
    # sources[1:]: 30 full answers, and `first`/`again`, one peer.
    assert len(known) == (KNOWN_ANSWERS - 2) * MAX_PEERS_PER_EXCHANGE + 1
    assert not asked_first & {peer.peer_id for peer in known}  # the oldest answer went
    assert again in known and first not in known


async def test_many_flooding_peers_fill_the_table_only_to_its_bound():
    host = _FloodedHost()
    host.connections = {_fake_id(): object() for _ in range(KNOWN_ANSWERS + 8)}
    now = 0.0
    # One short of the target: every round exchanges, and dials a single candidate.
    discovery = Discovery(host, [], target_connections=len(host.connections) + 1,  # type: ignore[arg-type]
                          clock=lambda: now)
    for _ in range(10 * KNOWN_ANSWERS):
        await discovery.step()
        assert len(discovery.known_peers()) <= MAX_KNOWN_PEERS
        now += DISCOVERY_INTERVAL_S
    assert len(discovery.known_peers()) == MAX_KNOWN_PEERS


async def test_dial_failures_are_forgotten_once_their_backoff_is_over():
    host = _FloodedHost()
    host.connections = {_fake_id(): object()}
    now = 0.0
    target = 4
    discovery = Discovery(host, [], target_connections=target, clock=lambda: now)  # type: ignore[arg-type]
    for _ in range(50):
        await discovery.step()
        now += DISCOVERY_INTERVAL_S
    assert host.dials >= 50 * (target - 1) // 2
    # Only the failures of the rounds within one backoff are remembered.
    rounds = math.ceil(REDIAL_BACKOFF_S / DISCOVERY_INTERVAL_S)
    assert len(discovery._last_failure) <= rounds * (target - 1)
