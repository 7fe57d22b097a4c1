from hypothesis import given
from hypothesis import strategies as st
from libp2p.crypto.secp256k1 import create_new_key_pair
from libp2p.peer.id import ID
from multiaddr import Multiaddr

from lilypad_p2p.net import KnownPeer
from lilypad_p2p.net._discovery import decode_peer_list, dialable, encode_peer_list
from lilypad_p2p.net._params import MAX_PEERS_PER_EXCHANGE


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
