import trio
from hypothesis import given
from hypothesis import strategies as st
from libp2p.crypto.secp256k1 import create_new_key_pair
from libp2p.peer.id import ID
from multiaddr import Multiaddr
from trio.testing import MockClock

from lilypad_p2p.net import KnownPeer
from lilypad_p2p.net._discovery import Discovery, decode_peer_list, dialable, encode_peer_list
from lilypad_p2p.net._params import (
    DISCOVERY_INTERVAL_S,
    DISCOVERY_SATISFIED_INTERVAL_S,
    MAX_PEERS_PER_EXCHANGE,
)


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
