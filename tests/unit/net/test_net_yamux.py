"""Muxer selection: hosts offer Yamux first and still accept Mplex (multistream order)."""

from libp2p.crypto.secp256k1 import create_new_key_pair

from lilypad_p2p.net._admission import NetLimits
from lilypad_p2p.net._host import DEFAULT_MUXERS, Muxer, build_host, preferring
from lilypad_p2p.net._levers import GuardedMplex
from lilypad_p2p.net._yamux import GuardedYamux


def _offered(muxers):
    host = build_host(create_new_key_pair(), [], muxers, target_connections=8, limits=NetLimits())
    upgrader = host.get_network().upgrader  # type: ignore[attr-defined]
    return list(upgrader.muxer_multistream.transports.items())


def test_hosts_offer_yamux_first_and_still_accept_mplex():
    assert DEFAULT_MUXERS == (Muxer.YAMUX, Muxer.MPLEX)
    assert _offered(DEFAULT_MUXERS) == [
        ("/yamux/1.0.0", GuardedYamux),
        ("/mplex/6.7.0", GuardedMplex),
    ]


def test_a_preference_only_changes_the_order():
    assert [p for p, _ in _offered(preferring(Muxer.MPLEX))] == ["/mplex/6.7.0", "/yamux/1.0.0"]
    assert [p for p, _ in _offered((Muxer.MPLEX,))] == ["/mplex/6.7.0"]
