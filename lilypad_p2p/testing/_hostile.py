"""Hostile peers for tests and benchmarks: plain py-libp2p hosts (none of our net code) with
their own keys, and the pubsub spec's message signing done by hand.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from libp2p import new_host
from libp2p.abc import IHost, IMuxedConn, INetStream
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11, GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.mplex.mplex import MPLEX_PROTOCOL_ID, Mplex
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from libp2p.tools.anyio_service import background_trio_service
from libp2p.utils.varint import encode_uvarint
from multiaddr import Multiaddr

from lilypad_p2p.identity import Identity

# The library's own muxers, as a plain py-libp2p attacker has them.
_MUXERS: dict[str, tuple[str, type[IMuxedConn]]] = {
    "mplex": (MPLEX_PROTOCOL_ID, Mplex), "yamux": (YAMUX_PROTOCOL_ID, Yamux),
}


def raw_host(identity: Identity, muxer: str = "mplex") -> IHost:
    """A plain py-libp2p host (Noise, one muxer: "mplex" or "yamux") with `identity`'s key."""
    key_pair = identity.libp2p_key_pair()
    noise = NoiseTransport(key_pair, noise_privkey=create_x25519_key_pair().private_key)
    protocol, muxer_class = _MUXERS[muxer]
    return new_host(
        key_pair=key_pair,
        sec_opt={TProtocol(NOISE_PROTOCOL_ID): noise},
        muxer_opt={TProtocol(protocol): muxer_class},
    )


@contextlib.asynccontextmanager
async def connected_host(target_addr: str, muxer: str = "mplex") -> AsyncIterator[tuple[IHost, ID]]:
    """A raw host with a fresh key, connected to `target_addr`; yields (host, its peer ID)."""
    host = raw_host(Identity.generate(), muxer)
    async with host.run([Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        info = info_from_p2p_addr(Multiaddr(target_addr))
        await host.connect(info)
        yield host, info.peer_id


@contextlib.asynccontextmanager
async def gossip_attacker(
    target_addr: str, topics: tuple[str, ...], identity: Identity | None = None
) -> AsyncIterator[tuple[IHost, Pubsub, ID]]:
    """A plain GossipSub peer subscribed to `topics`, connected to `target_addr`."""
    host = raw_host(identity or Identity.generate())
    gossipsub = GossipSub(
        protocols=[PROTOCOL_ID_V11], degree=4, degree_low=3, degree_high=6, heartbeat_interval=1
    )
    pubsub = Pubsub(host, gossipsub, strict_signing=True)
    async with (
        host.run([Multiaddr("/ip4/127.0.0.1/tcp/0")]),
        background_trio_service(pubsub),
        background_trio_service(gossipsub),
    ):
        await pubsub.wait_until_ready()
        for topic in topics:
            await pubsub.subscribe(topic)
        info = info_from_p2p_addr(Multiaddr(target_addr))
        await host.connect(info)
        await pubsub.wait_for_peer(info.peer_id, timeout=30)
        try:
            yield host, pubsub, info.peer_id
        finally:
            pubsub.seen_messages.stop()


async def publish_direct(host: IHost, target: ID, topic: str, payloads: list[bytes]) -> None:
    """Push `payloads` to `target` in one RPC on a fresh meshsub stream, bypassing our mesh.

    Built from the pubsub spec: each message signed by our key over "libp2p-pubsub:" and the
    serialised message, with our public key attached (the node's strict signing accepts them;
    what it judges is the payload).
    """
    rpc = rpc_pb2.RPC()
    for payload in payloads:
        msg = rpc_pb2.Message(
            data=payload, topicIDs=[topic], from_id=host.get_id().to_bytes(),
            seqno=os.urandom(8),
        )
        msg.signature = host.get_private_key().sign(
            b"libp2p-pubsub:" + msg.SerializeToString()
        )
        msg.key = host.get_public_key().serialize()
        rpc.publish.append(msg)
    stream = await host.new_stream(target, [PROTOCOL_ID_V11])
    body = rpc.SerializeToString()
    await stream.write(encode_uvarint(len(body)) + body)


async def read_until_end(stream: INetStream) -> bytes:
    """Everything the node sends on `stream` until it closes or resets it."""
    data = bytearray()
    while True:
        try:
            chunk = await stream.read(65536)
        except Exception:  # reset by the node
            return bytes(data)
        if not chunk:
            return bytes(data)
        data += chunk


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")
