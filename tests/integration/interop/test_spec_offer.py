"""An outside implementer's offer, built from docs/WIRE.md alone, is accepted by a real node.

The offer and its envelope come from `lilypad_p2p.testing._spec_wire` (msgpack + coincurve, no
`lilypad_p2p.wire`); it travels from a plain py-libp2p peer (none of our net code) over
Noise + Yamux and GossipSub to a `lilypad-p2p node` process, whose offer book must list it under
the ID the spec says. A copy signed with the Ethereum `v = 27` convention must be refused.
"""

import time

import coincurve
import pytest
import trio
from libp2p import new_host
from libp2p.crypto.secp256k1 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11, GossipSub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from libp2p.tools.anyio_service import background_trio_service
from multiaddr import Multiaddr

from lilypad_p2p.localnet import LocalCluster
from lilypad_p2p.testing import _spec_wire as spec

pytestmark = [pytest.mark.net, pytest.mark.slow]

TOPIC = "/lilypad/1/market/cpu"
MESH_TIMEOUT_S = 30.0
ACCEPTED_WITHIN_S = 30.0
REPUBLISH_EVERY_S = 2.0


def _offer(key: bytes, now_ms: int, nonce: int) -> dict:
    return spec.resource_offer_body(
        market="cpu",
        provider=spec.address_of(key),
        spec={"milli_cpu": 1000, "ram_mb": 512, "disk_mb": 1024, "gpu_count": 0,
              "gpu_vram_mb": 0},
        modules=["cowsay:v0.0.4"],
        price_per_job_wei=10**15,
        collateral_wei=2**70,
        trusted_mediators=[],
        chain_ids=[31337],
        created_at=now_ms,
        expires_at=now_ms + 600_000,
        nonce=nonce,
    )


def _owners_and_ids(node) -> set[tuple[str, str]]:
    try:
        return {(o["owner"].lower(), o["id"]) for o in node.call("offers", {"market": "cpu"})}
    except Exception:  # busy node: the deadline bounds the wait
        return set()


async def test_offer_built_from_the_spec_alone_is_accepted(tmp_path):
    key = coincurve.PrivateKey().secret
    address = spec.address_of(key)
    key_pair = create_new_key_pair(key)
    host = new_host(
        key_pair=key_pair,
        sec_opt={
            TProtocol(NOISE_PROTOCOL_ID): NoiseTransport(
                key_pair, noise_privkey=create_x25519_key_pair().private_key
            )
        },
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux},
        listen_addrs=[Multiaddr("/ip4/127.0.0.1/tcp/0")],
    )
    assert str(host.get_id()) == spec.peer_id_of(key)
    gossipsub = GossipSub(
        protocols=[PROTOCOL_ID_V11], degree=4, degree_low=3, degree_high=6, heartbeat_interval=1
    )
    pubsub = Pubsub(host, gossipsub, strict_signing=True)
    cluster = LocalCluster(tmp_path)
    with cluster.running():
        # A node with no role only publishes into its market; this one must receive it.
        node = cluster.start_node("node", markets=("cpu",), env={"LILYPAD_FOLLOW_MARKETS": "true"})
        status = await trio.to_thread.run_sync(node.wait_ready)
        node_id = ID.from_base58(status["peer_id"])
        async with (
            host.run([Multiaddr("/ip4/127.0.0.1/tcp/0")]),
            background_trio_service(pubsub),
            background_trio_service(gossipsub),
        ):
            await pubsub.wait_until_ready()
            await pubsub.subscribe(TOPIC)
            await host.connect(info_from_p2p_addr(Multiaddr(node.dial_addr)))
            await pubsub.wait_for_subscription(node_id, TOPIC, timeout=MESH_TIMEOUT_S)
            await pubsub.wait_for_mesh(node_id, TOPIC, timeout=MESH_TIMEOUT_S)

            # First the Ethereum convention (v = 27): refused, so never listed.
            now_ms = int(time.time() * 1000)
            wrong = _offer(key, now_ms, nonce=1)
            raw = spec.msgpack.unpackb(spec.envelope(wrong, key, now_ms), raw=False)
            raw["signature"] = raw["signature"][:64] + bytes([27 + raw["signature"][64]])
            await pubsub.publish(TOPIC, spec.canonical(raw))

            body = _offer(key, now_ms, nonce=2)
            offer_id = spec.content_id(spec.canonical(body))
            wrong_id = spec.content_id(spec.canonical(wrong))
            accepted = False
            with trio.move_on_after(ACCEPTED_WITHIN_S):
                while not accepted:
                    # A fresh published_at each time: a new envelope, the same offer ID.
                    published_at = max(now_ms, int(time.time() * 1000))
                    await pubsub.publish(TOPIC, spec.envelope(body, key, published_at))
                    with trio.move_on_after(REPUBLISH_EVERY_S):
                        while not accepted:
                            listed = await trio.to_thread.run_sync(_owners_and_ids, node)
                            accepted = (address, offer_id) in listed
                            await trio.sleep(0.2)
            assert accepted, f"the node did not list the spec-built offer:\n{node.log_tail()}"
            assert (address, wrong_id) not in listed
        assert node.process.poll() is None, "the node died"
