"""Deal stream protocols between two real GossipNets on loopback (no prior connection)."""

import pytest
import trio
from libp2p.network.stream.exceptions import StreamError

from lilypad_p2p import wire
from lilypad_p2p.identity import Identity
from lilypad_p2p.net import (
    DEAL_PROTOCOL,
    JOB_PROTOCOL,
    RESULT_PROTOCOL,
    GossipNet,
    StreamRequestFailed,
)
from lilypad_p2p.net._streams import encode_frame

pytestmark = pytest.mark.net
EXCHANGE_TIMEOUT_S = 20.0
DEAL_ID = bytes(range(32))


def _net() -> GossipNet:
    return GossipNet(Identity.generate(), listen_addrs=["/ip4/127.0.0.1/tcp/0"], markets=["cpu"])


async def test_request_response_over_each_protocol_and_garbage_is_refused():
    server, asker = _net(), _net()
    seen: list[tuple[str, wire.DealMessage]] = []

    async def acceptance(peer_id, request):
        seen.append((str(peer_id), request))
        return wire.AcceptanceAck(deal_id=request.deal_id)

    async def job(peer_id, request):
        return wire.DealRefused(reason="no capacity")

    server.set_stream_handler(RESULT_PROTOCOL, acceptance)
    server.set_stream_handler(JOB_PROTOCOL, job)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        await nursery.start(asker.run)
        notice = wire.AcceptanceNotice(
            chain_id=1, deal_id=DEAL_ID, result_hash=bytes(32), job_creator_signature=bytes(65)
        )
        with trio.fail_after(EXCHANGE_TIMEOUT_S):
            answer = await asker.request(
                str(server.peer_id), RESULT_PROTOCOL, notice, addrs=server.listen_addrs()
            )
        assert answer == wire.AcceptanceAck(deal_id=DEAL_ID)
        assert seen == [(str(asker.peer_id), notice)]

        # A request the protocol does not carry is refused locally.
        with pytest.raises(TypeError):
            await asker.request(str(server.peer_id), JOB_PROTOCOL, notice)

        # A protocol without a handler: the stream cannot be opened.
        with trio.fail_after(EXCHANGE_TIMEOUT_S), pytest.raises(StreamRequestFailed):
            await asker.request(
                str(server.peer_id),
                DEAL_PROTOCOL,
                wire.DealProposal(
                    chain_id=1, job_offer=b"x", resource_offer_cid="c", deal=_deal_map(),
                    job_creator_signature=bytes(65),
                ),
            )

        # Garbage on a real stream: no answer, and the sender is reported.
        stream = await asker._host.new_stream(server.peer_id, [RESULT_PROTOCOL])
        await stream.write(len(b"\x93junk").to_bytes(4, "big") + b"\x93junk")
        assert await _closed_without_answer(stream)
        assert server.statistics().reports.get("low_tolerance", 0) >= 1
        # A valid frame of the wrong message type is garbage too.
        stream = await asker._host.new_stream(server.peer_id, [RESULT_PROTOCOL])
        await stream.write(encode_frame(wire.AcceptanceAck(deal_id=DEAL_ID)))
        assert await _closed_without_answer(stream)
        nursery.cancel_scope.cancel()


def _deal_map() -> dict[str, object]:
    return {name: 0 for name in wire.DEAL_FIELDS}


async def _closed_without_answer(stream) -> bool:
    with trio.fail_after(EXCHANGE_TIMEOUT_S):
        try:
            return await stream.read(100) in (b"", None)
        except StreamError:  # EOF or reset: closed, nothing answered
            return True


async def test_large_job_inputs_only_from_a_peer_with_an_open_deal():
    server, asker = _net(), _net()
    deal_peers: set[str] = set()
    server.set_deal_peers(lambda peer: str(peer) in deal_peers)
    handled: list[int] = []

    async def job(peer_id, request):
        handled.append(len(request.sealed_inputs))
        return wire.DealRefused(reason="handled")

    server.set_stream_handler(JOB_PROTOCOL, job)
    request = wire.JobRequest(
        chain_id=1, deal=_deal_map(), module="busybox-echo", sealed_inputs=bytes(200_000),
        output_recipient=bytes(32),
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        await nursery.start(asker.run)
        with trio.fail_after(EXCHANGE_TIMEOUT_S):
            refused = await asker.request(
                str(server.peer_id), JOB_PROTOCOL, request, addrs=server.listen_addrs()
            )
        assert isinstance(refused, wire.DealRefused) and "deal" in refused.reason
        assert handled == []
        deal_peers.add(str(asker.peer_id))
        with trio.fail_after(EXCHANGE_TIMEOUT_S):
            answer = await asker.request(str(server.peer_id), JOB_PROTOCOL, request)
        assert answer == wire.DealRefused(reason="handled")
        assert handled == [200_000]
        nursery.cancel_scope.cancel()
