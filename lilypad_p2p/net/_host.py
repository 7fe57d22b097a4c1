"""The libp2p host: TCP, Noise only, Yamux then Mplex, the node's secp256k1 key."""

from __future__ import annotations

import enum
import socket
from collections.abc import Sequence

import multiaddr
from libp2p import new_host
from libp2p.abc import IHost, IMuxedConn
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.network.config import ConnectionConfig
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.mplex.mplex import MPLEX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID

from lilypad_p2p.net._admission import NetLimits
from lilypad_p2p.net._errors import CannotListen, NetError
from lilypad_p2p.net._mplex import GuardedMplex
from lilypad_p2p.net._yamux import GuardedYamux, use_muxer_classes


class Muxer(enum.Enum):
    """A stream multiplexer a host can speak."""

    YAMUX = "yamux"
    MPLEX = "mplex"


# The muxer we propose first: Yamux, what the libp2p specs keep (Mplex is deprecated) and the
# only one go-libp2p and rust-libp2p offer on their defaults. Mplex is still offered, so nodes
# that prefer it connect too. py-libp2p 0.8.1's Yamux runs with our fixes (`_yamux`): closes
# that always end the connection, and window credit in half windows, which brought its CPU per
# gossip delivery to Mplex's (benchmarks/RESULTS.md "Gossip on Yamux and Mplex").
DEFAULT_MUXER = Muxer.YAMUX


def preferring(muxer: Muxer) -> tuple[Muxer, ...]:
    """Every muxer, `muxer` first: what a node offers (multistream takes the first both speak)."""
    return (muxer, *(other for other in Muxer if other is not muxer))


DEFAULT_MUXERS = preferring(DEFAULT_MUXER)
_MUXER_OPTIONS: dict[Muxer, tuple[TProtocol, type[IMuxedConn]]]
_MUXER_OPTIONS = {
    Muxer.YAMUX: (TProtocol(YAMUX_PROTOCOL_ID), GuardedYamux),
    Muxer.MPLEX: (TProtocol(MPLEX_PROTOCOL_ID), GuardedMplex),
}


def parse_multiaddrs(addrs: Sequence[str], *, setting: str) -> list[multiaddr.Multiaddr]:
    """Parse multiaddr strings; raise `NetError` naming the setting and the bad address."""
    parsed = []
    for addr in addrs:
        try:
            parsed.append(multiaddr.Multiaddr(addr))
        except ValueError as error:  # multiaddr wraps any bad part in StringParseError
            raise NetError(f"{setting}: {addr!r} is not a multiaddr ({error})") from error
    return parsed


def refuse_taken_ports(addrs: Sequence[multiaddr.Multiaddr]) -> None:
    """Raise CannotListen for an address something already listens on.

    py-libp2p listens with SO_REUSEPORT (hole punching dials from the listen port), so a second
    node on this machine could bind a taken port and silently get half of its connections. A
    probe bound without SO_REUSEPORT fails while any socket listens there.
    """
    for addr in addrs:
        names = [protocol.name for protocol in addr.protocols()]
        if names not in (["ip4", "tcp"], ["ip6", "tcp"]) or addr.value_for_protocol("tcp") == "0":
            continue  # an ephemeral port is never taken; anything else the library refuses
        family = socket.AF_INET if names[0] == "ip4" else socket.AF_INET6
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((addr.value_for_protocol(names[0]), int(addr.value_for_protocol("tcp"))))
            except OSError as error:
                raise CannotListen(f"cannot listen on {addr}: {error.strerror} (another node "
                                   "on this machine?)") from error


def build_host(
    key_pair: KeyPair,
    listen_addrs: Sequence[multiaddr.Multiaddr],
    muxers: Sequence[Muxer],
    *,
    target_connections: int,
    limits: NetLimits,
    enable_upnp: bool = False,
) -> IHost:
    """A host that speaks only Noise (no plaintext, SECIO or TLS fallback) over TCP, and
    offers `muxers` in that order.

    The library's own auto-connector (which would dial known peers until it holds 50 and keep
    trying for 100) is set to our discovery's target, so the two agree on how many is enough.
    `enable_upnp` asks the router (miniupnpc) to map the listen port (behind NAT, `--upnp`).
    """
    if not muxers:
        raise NetError("at least one stream muxer must be offered")
    noise = NoiseTransport(key_pair, noise_privkey=create_x25519_key_pair().private_key)
    # Offered in this order (multistream negotiates the first the other side speaks).
    muxer_options = dict(_MUXER_OPTIONS[muxer] for muxer in muxers)
    host = new_host(
        key_pair=key_pair,
        sec_opt={TProtocol(NOISE_PROTOCOL_ID): noise},
        muxer_opt=muxer_options,
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
    use_muxer_classes(host)
    return host
