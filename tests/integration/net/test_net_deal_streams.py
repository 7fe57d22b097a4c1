"""Deal stream protocols between two real GossipNets on loopback (no prior connection)."""

import os

import pytest
import trio
from libp2p.network.stream.exceptions import StreamError
from nacl.public import PrivateKey, PublicKey

from lilypad_p2p import wire
from lilypad_p2p.identity import Identity
from lilypad_p2p.net import (
    DEAL_STREAM,
    JOB_STREAM,
    MEDIATION_STREAM,
    RESULT_PROTOCOL,
    RESULT_STREAM,
    GossipNet,
    Reply,
    StreamRequestFailed,
    answer_only,
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

    server.deals.serve(RESULT_STREAM, acceptance)
    server.deals.serve(JOB_STREAM, job)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        await nursery.start(asker.run)
        notice = wire.AcceptanceNotice(
            chain_id=1, deal_id=DEAL_ID, result_hash=bytes(32), job_creator_signature=bytes(65)
        )
        with trio.fail_after(EXCHANGE_TIMEOUT_S):
            answer = await asker.deals.request(
                str(server.peer_id), RESULT_STREAM, notice, addrs=server.listen_addrs()
            )
        assert answer == wire.AcceptanceAck(deal_id=DEAL_ID)
        assert seen == [(str(asker.peer_id), notice)]

        # A request the protocol does not carry is refused locally.
        with pytest.raises(TypeError):
            await asker.deals.request(str(server.peer_id), JOB_STREAM, notice)

        # A protocol without a handler: the stream cannot be opened.
        with trio.fail_after(EXCHANGE_TIMEOUT_S), pytest.raises(StreamRequestFailed):
            await asker.deals.request(
                str(server.peer_id),
                DEAL_STREAM,
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


async def test_job_inputs_stream_only_from_a_peer_with_an_open_deal_and_outputs_stream_back():
    """/lilypad/job/2 between real hosts: inputs and outputs of several chunks each, sealed
    from the spec's primitives; without an agreed deal no input byte is asked for or read."""
    server, asker = _net(), _net()
    deal_peers: set[str] = set()
    server.set_deal_peers(lambda peer: str(peer) in deal_peers)
    server_key, asker_key = PrivateKey.generate(), PrivateKey.generate()
    deal_id = bytes(range(32))
    data = os.urandom(3 * wire.CHUNK_BYTES + 123)
    received: list[bytes] = []

    async def job(peer_id, request, gate):
        opener = wire.ChunkOpener(server_key, request.inputs_preamble,
                                  wire.INPUTS_CONTEXT + deal_id, request.inputs_bytes)

        async def sink(chunk: bytes) -> None:
            received.append(opener.open(chunk))

        await gate.receive(deal_id, request.inputs_bytes, sink)
        output = b"".join(received)[::-1]
        sealer = wire.ChunkSealer(request.output_recipient, wire.OUTPUT_CONTEXT + deal_id,
                                  len(output))

        async def body():
            for chunk in sealer.seal(output):
                yield chunk

        return Reply(wire.JobResultMessage(
            deal_id=deal_id, result_hash=bytes(32), provider_signature=bytes(65),
            output_preamble=sealer.preamble, output_bytes=len(output)), body)

    server.deals.serve_transfer(JOB_STREAM, job)
    sealer = wire.ChunkSealer(server_key.public_key, wire.INPUTS_CONTEXT + deal_id, len(data))
    chunks = sealer.seal(data)
    request = wire.JobRequest(
        chain_id=1, deal=_deal_map(), module="busybox-echo", inputs_preamble=sealer.preamble,
        inputs_bytes=len(data), inputs_nonce=bytes(32),
        output_recipient=bytes(asker_key.public_key),
    )

    async def inputs():
        for chunk in chunks:
            yield chunk

    async def on_answer(answer, body):
        if body is None:
            return answer, b""
        opener = wire.ChunkOpener(asker_key, answer.output_preamble,
                                  wire.OUTPUT_CONTEXT + deal_id, answer.output_bytes)
        return answer, b"".join([opener.open(chunk) async for chunk in body])

    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        await nursery.start(asker.run)
        with trio.fail_after(EXCHANGE_TIMEOUT_S):
            refused, _ = await asker.deals.exchange(
                str(server.peer_id), JOB_STREAM, request, inputs=inputs,
                on_answer=on_answer, addrs=server.listen_addrs())
        assert isinstance(refused, wire.DealRefused) and "deal" in refused.reason
        assert received == []
        deal_peers.add(str(asker.peer_id))
        with trio.fail_after(EXCHANGE_TIMEOUT_S):
            answer, output = await asker.deals.exchange(str(server.peer_id), JOB_STREAM, request,
                                                  inputs=inputs, on_answer=on_answer)
        assert isinstance(answer, wire.JobResultMessage)
        assert b"".join(received) == data and output == data[::-1]
        nursery.cancel_scope.cancel()


async def test_mediation_inputs_stream_from_a_peer_without_a_deal_once_the_handler_asks():
    """/lilypad/mediation/3: a mediator has no deal with the disputing party, so its handler
    decides (it checks the deal on chain); a body it does not ask for is never read. A verdict
    that brings the output streams it after its frame, as a job result does."""
    server, asker = _net(), _net()
    server.set_deal_peers(lambda peer: False)
    key, own = PrivateKey.generate(), PrivateKey.generate()
    data = os.urandom(2 * wire.CHUNK_BYTES + 7)
    output = os.urandom(wire.CHUNK_BYTES + 3)
    received: list[bytes] = []

    async def mediate(peer_id, request, gate):
        if request.module != "judged":
            return Reply(wire.DealRefused(reason="the deal does not name this mediator"))
        opener = wire.ChunkOpener(key, request.inputs_preamble, wire.MEDIATION_CONTEXT + DEAL_ID,
                                  request.inputs_bytes)

        async def sink(chunk: bytes) -> None:
            received.append(opener.open(chunk))

        await gate.receive(DEAL_ID, request.inputs_bytes, sink)
        verdict = {"deal_id": DEAL_ID, "outcome": 1, "result_hash": bytes(32),
                   "mediator_signature": bytes(65)}
        if not request.output_recipient:
            return Reply(wire.VerdictNotice(**verdict))
        sealer = wire.ChunkSealer(PublicKey(request.output_recipient),
                                  wire.OUTPUT_CONTEXT + DEAL_ID, len(output))

        async def body():
            for chunk in sealer.seal(output):
                yield chunk

        return Reply(wire.VerdictWithOutput(**verdict, output_preamble=sealer.preamble,
                                            output_bytes=len(output)), body)

    server.deals.serve_transfer(MEDIATION_STREAM, mediate)
    sealer = wire.ChunkSealer(key.public_key, wire.MEDIATION_CONTEXT + DEAL_ID, len(data))
    chunks = sealer.seal(data)
    sent: list[int] = []

    async def inputs():
        for chunk in chunks:
            sent.append(len(chunk))
            yield chunk

    def request(module: str, recipient: bytes = b"") -> wire.MediationRequest:
        return wire.MediationRequest(
            chain_id=1, deal=_deal_map(), module=module, inputs_preamble=sealer.preamble,
            inputs_bytes=len(data), inputs_nonce=bytes(32), job_offer=b"a job offer",
            result_hash=bytes(32), provider_signature=bytes(65), output_recipient=recipient)

    async def take_output(answer, body):
        opener = wire.ChunkOpener(own, answer.output_preamble, wire.OUTPUT_CONTEXT + DEAL_ID,
                                  answer.output_bytes)
        return answer, b"".join([opener.open(chunk) async for chunk in body])

    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        await nursery.start(asker.run)
        with trio.fail_after(EXCHANGE_TIMEOUT_S):
            refused = await asker.deals.exchange(str(server.peer_id), MEDIATION_STREAM,
                                           request("other"), inputs=inputs,
                                           on_answer=answer_only, addrs=server.listen_addrs())
        assert isinstance(refused, wire.DealRefused) and sent == [] and received == []
        with trio.fail_after(EXCHANGE_TIMEOUT_S):
            verdict = await asker.deals.exchange(str(server.peer_id), MEDIATION_STREAM,
                                           request("judged"), inputs=inputs,
                                           on_answer=answer_only)
        assert isinstance(verdict, wire.VerdictNotice) and b"".join(received) == data
        # A job creator that never got the output asks for it: it follows the verdict.
        with trio.fail_after(EXCHANGE_TIMEOUT_S):
            verdict, taken = await asker.deals.exchange(
                str(server.peer_id), MEDIATION_STREAM,
                request("judged", bytes(own.public_key)), inputs=inputs, on_answer=take_output)
        assert isinstance(verdict, wire.VerdictWithOutput) and taken == output
        nursery.cancel_scope.cancel()
