"""The libp2p host: TCP, Noise only, the chosen muxer, the node's secp256k1 key."""

from __future__ import annotations

import enum
from collections.abc import Sequence

import multiaddr
from libp2p import new_host
from libp2p.abc import IHost
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.network.config import ConnectionConfig
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.mplex.mplex import MPLEX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux

from lilypad_p2p.net._admission import NetLimits
from lilypad_p2p.net._errors import NetError
from lilypad_p2p.net._levers import GuardedMplex


class Muxer(enum.Enum):
    """The stream multiplexer a host speaks (only one: see `build_host`)."""

    MPLEX = "mplex"
    YAMUX = "yamux"


# Measured in benchmarks/gossip.py (RESULTS.md "Gossip network") and in the notes: with our
# levers Mplex costs less CPU per delivered message than Yamux (3.9 vs 4.8 ms at 10 nodes),
# whose flow-control window updates add work on nearly every read. Yamux stays selectable for
# measurement only: it lacks the read guard (`_levers.GuardedMplex`). Relayed connections work
# over both (GuardedMplex streams are full duplex, see `_levers`).
DEFAULT_MUXER = Muxer.MPLEX


def parse_multiaddrs(addrs: Sequence[str], *, setting: str) -> list[multiaddr.Multiaddr]:
    """Parse multiaddr strings; raise `NetError` naming the setting and the bad address."""
    parsed = []
    for addr in addrs:
        try:
            parsed.append(multiaddr.Multiaddr(addr))
        except Exception as error:  # multiaddr raises several unrelated types
            raise NetError(f"{setting}: {addr!r} is not a multiaddr ({error})") from error
    return parsed


def build_host(
    key_pair: KeyPair,
    listen_addrs: Sequence[multiaddr.Multiaddr],
    muxer: Muxer,
    *,
    target_connections: int,
    limits: NetLimits,
    enable_upnp: bool = False,
) -> IHost:
    """A host that speaks only Noise (no plaintext, SECIO or TLS fallback) over TCP.

    The library's own auto-connector (which would dial known peers until it holds 50 and keep
    trying for 100) is set to our discovery's target, so the two agree on how many is enough.
    `enable_upnp` asks the router (miniupnpc) to map the listen port (behind NAT, `--upnp`).
    """
    noise = NoiseTransport(key_pair, noise_privkey=create_x25519_key_pair().private_key)
    # One muxer, not a fallback list: only our guarded Mplex survives a peer's corrupt frames.
    if muxer is Muxer.MPLEX:
        muxers = {TProtocol(MPLEX_PROTOCOL_ID): GuardedMplex}
    else:
        muxers = {TProtocol(YAMUX_PROTOCOL_ID): Yamux}
    return new_host(
        key_pair=key_pair,
        sec_opt={TProtocol(NOISE_PROTOCOL_ID): noise},
        muxer_opt=muxers,
        listen_addrs=list(listen_addrs),
        enable_upnp=enable_upnp,
        # The library's own caps sit at ours; `_swarm_guard` enforces the finer budgets.
        connection_config=ConnectionConfig(
            min_connections=target_connections,
            low_watermark=target_connections,
            high_watermark=limits.max_connections,
            max_connections=limits.max_connections,
            max_connections_per_peer=limits.max_per_peer,
        ),
    )
