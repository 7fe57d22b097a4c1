"""A peer that answers every peer exchange with fresh made-up peers, against our discovery on
our own host (in process: a node process does not report what its discovery knows). The victim
must remember at most one answer's worth from it and keep serving honest peers.

The attacker is a plain py-libp2p host with its own key; its answers are built from WIRE.md
§6.2 and its peer IDs from the spec's derivation (`_spec_wire`), not with our encoder.
"""

import json
import os
import socket

import pytest
import trio
from libp2p.peer.peerinfo import info_from_p2p_addr
from multiaddr import Multiaddr

from lilypad_p2p.identity import Identity
from lilypad_p2p.net import PEER_EXCHANGE_PROTOCOL, Discovery, NetLimits
from lilypad_p2p.net._discovery import MAX_KNOWN_PEERS
from lilypad_p2p.net._host import DEFAULT_MUXERS, build_host
from lilypad_p2p.net._params import MAX_PEER_EXCHANGE_BYTES, MAX_PEERS_PER_EXCHANGE
from lilypad_p2p.testing._hostile import raw_host, read_until_end
from lilypad_p2p.testing._spec_wire import peer_id_of

pytestmark = [pytest.mark.net, pytest.mark.slow]

# Each round also dials one made-up peer, refused at once but retried by py-libp2p (~0.7 s).
EXCHANGES = 12
# More than an answer may carry: the victim reads only the first MAX_PEERS_PER_EXCHANGE.
FAKES_PER_ANSWER = 200
LISTEN = Multiaddr("/ip4/127.0.0.1/tcp/0")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _fake_answer(port: int) -> bytes:
    entries = [{"id": peer_id_of(os.urandom(32)), "addrs": [f"/ip4/127.0.0.1/tcp/{port}"]}
               for _ in range(FAKES_PER_ANSWER)]
    data = json.dumps(entries).encode()
    assert len(data) <= MAX_PEER_EXCHANGE_BYTES
    return data


def _p2p_addr(host) -> Multiaddr:
    return Multiaddr(f"{host.get_transport_addrs()[0]}/p2p/{host.get_id()}")


async def test_a_peer_answering_fresh_ids_every_exchange_fills_no_more_than_one_answer():
    attacker = raw_host(Identity.generate())
    port = _closed_port()
    served: list[set[str]] = []

    async def flood(stream) -> None:
        answer = _fake_answer(port)
        served.append({entry["id"] for entry in json.loads(answer)})
        await stream.write(answer)
        await stream.close()

    attacker.set_stream_handler(PEER_EXCHANGE_PROTOCOL, flood)
    victim = build_host(Identity.generate().libp2p_key_pair(), [LISTEN], DEFAULT_MUXERS,
                        target_connections=2, limits=NetLimits())
    honest = raw_host(Identity.generate())
    with trio.fail_after(30):
        async with attacker.run([LISTEN]), victim.run([LISTEN]), honest.run([LISTEN]):
            discovery = Discovery(victim, [_p2p_addr(attacker)], target_connections=2)
            for _ in range(EXCHANGES):
                await discovery.step()
                assert len(discovery.known_peers()) <= MAX_PEERS_PER_EXCHANGE <= MAX_KNOWN_PEERS
            assert discovery.exchanges == len(served) == EXCHANGES
            known = {str(peer.peer_id) for peer in discovery.known_peers()}
            assert known <= served[-1]  # the latest answer replaced the earlier ones
            assert attacker.get_id() in victim.get_network().get_connections_map()

            # The victim still serves: an honest peer connects and is told of the attacker
            # (a connected peer), never of the made-up peers the victim only heard of.
            await honest.connect(info_from_p2p_addr(_p2p_addr(victim)))
            stream = await honest.new_stream(victim.get_id(), [PEER_EXCHANGE_PROTOCOL])
            told = {entry["id"] for entry in json.loads(await read_until_end(stream))}
            assert str(attacker.get_id()) in told
            assert not told & set().union(*served)
