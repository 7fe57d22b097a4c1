"""Deal streams through a circuit relay between real GossipNets on loopback (default muxer).

The asker knows the server only by a `/p2p-circuit` address: `GossipNet.request` dials it
through the relay (py-libp2p's `host.connect` refuses such addresses) and the exchange works.
"""

import pytest
import trio

from lilypad_p2p import wire
from lilypad_p2p.identity import Identity
from lilypad_p2p.net import RESULT_STREAM, GossipNet, NatSettings

pytestmark = pytest.mark.net
EXCHANGE_TIMEOUT_S = 30.0
DEAL_ID = bytes(range(32))


def _net(*, relay: bool = False, bootstrap: tuple[str, ...] = ()) -> GossipNet:
    # One peer each, so discovery does not connect asker and server directly.
    return GossipNet(
        Identity.generate(), listen_addrs=["/ip4/127.0.0.1/tcp/0"], markets=["cpu"],
        bootstrap=bootstrap, target_connections=1,
        nat=NatSettings(relay=relay),
    )


async def test_a_deal_stream_request_reaches_a_peer_only_through_its_relay():
    relay = _net(relay=True)

    async def acceptance(peer_id, request):
        return wire.AcceptanceAck(deal_id=request.deal_id)

    async with trio.open_nursery() as nursery:
        await nursery.start(relay.run)
        server = _net(bootstrap=(relay.listen_addrs()[0],))
        asker = _net(bootstrap=(relay.listen_addrs()[0],))
        server.deals.serve(RESULT_STREAM, acceptance)
        await nursery.start(server.run)
        await nursery.start(asker.run)
        with trio.fail_after(EXCHANGE_TIMEOUT_S):
            while not server.nat.circuit_addrs():
                # Loopback is reachable, so the server would never reserve on its own.
                await server.nat._reserve(relay.peer_id)
                server.nat._refresh_circuit_addrs()
        circuit = server.nat.circuit_addrs()
        assert all("/p2p-circuit/" in addr for addr in circuit)
        assert asker.nat.connection_kind(server.peer_id) == "none"
        notice = wire.AcceptanceNotice(
            chain_id=1, deal_id=DEAL_ID, result_hash=bytes(32), job_creator_signature=bytes(65)
        )
        with trio.fail_after(EXCHANGE_TIMEOUT_S):
            answer = await asker.deals.request(
                str(server.peer_id), RESULT_STREAM, notice, addrs=circuit
            )
        assert answer == wire.AcceptanceAck(deal_id=DEAL_ID)
        assert str(server.peer_id) in asker.nat.status()["relayed_peers"]
        nursery.cancel_scope.cancel()
