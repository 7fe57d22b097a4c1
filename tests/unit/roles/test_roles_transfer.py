"""A job transfer: the provider checks the declared size against max_job_bytes before any
input byte is asked for, and spools a received stream 0600 exactly as sent; the client takes
the output stream as the committed output or the provider's signed failure report."""

import hashlib
import os

import pytest
import trio
from nacl.public import PrivateKey

from lilypad_p2p import wire
from lilypad_p2p.identity import Identity
from lilypad_p2p.roles._failure import FailureClaim, FailureClass, FailureReport
from lilypad_p2p.roles._transfer import (
    BadOutput,
    JobTooLarge,
    output_body,
    receive_inputs,
    receive_output,
    uncommitted,
)

DEAL = {name: 0 for name in wire.DEAL_FIELDS}
DEAL_ID = bytes(range(32))
NONCE = b"\x07" * 32


class RecordingGate:
    """Stands in for the network's InputsGate: hands over given chunks, records the ask."""

    def __init__(self, chunks):
        self.chunks, self.asked = chunks, []

    async def receive(self, deal_id, size, sink):
        self.asked.append((deal_id, size))
        for chunk in self.chunks:
            await sink(chunk)


def _request(size, preamble=bytes(wire.PREAMBLE_BYTES)):
    return wire.JobRequest(chain_id=1, deal=DEAL, module="m", inputs_preamble=preamble,
                           inputs_bytes=size, inputs_nonce=NONCE, output_recipient=bytes(32))


async def test_over_max_job_bytes_is_refused_before_asking_for_a_byte(tmp_path):
    gate = RecordingGate([])
    with pytest.raises(JobTooLarge, match="over this provider's max_job_bytes of 1048576"):
        await receive_inputs(gate, _request(2**20 + 1), DEAL_ID, tmp_path / "d.inputs", 2**20)
    assert gate.asked == [] and list(tmp_path.iterdir()) == []


async def test_more_than_the_free_disk_is_refused_before_asking(tmp_path):
    gate = RecordingGate([])
    with pytest.raises(JobTooLarge, match="free disk"):
        await receive_inputs(gate, _request(2**60), DEAL_ID, tmp_path / "d.inputs", 2**62)
    assert gate.asked == []


async def test_a_received_stream_is_spooled_0600_and_opens(tmp_path):
    key = PrivateKey.generate()
    data = b"x" * (wire.CHUNK_BYTES + 5)
    sealer = wire.ChunkSealer(key.public_key, wire.INPUTS_CONTEXT + DEAL_ID, len(data))
    gate = RecordingGate(sealer.seal(data))
    spool = tmp_path / "d.inputs"
    await receive_inputs(gate, _request(len(data), sealer.preamble), DEAL_ID, spool, 2**30)
    assert gate.asked == [(DEAL_ID, len(data))]
    assert spool.stat().st_mode & 0o777 == 0o600
    from lilypad_p2p.exec._job_stream import open_spool

    pieces = await trio.to_thread.run_sync(
        lambda: list(open_spool(spool, key, wire.INPUTS_CONTEXT + DEAL_ID)))
    assert b"".join(pieces) == data


async def test_a_spool_that_does_not_open_says_why_before_the_deal_is_opened(tmp_path):
    key, other = PrivateKey.generate(), PrivateKey.generate()
    data = b"y" * (wire.CHUNK_BYTES + 5)
    context = wire.INPUTS_CONTEXT + DEAL_ID
    committed = hashlib.sha256(NONCE + data).digest()  # as WIRE.md defines it
    for recipient, bent, opens in ((key, False, True), (key, True, False), (other, False, False)):
        sealer = wire.ChunkSealer(recipient.public_key, context, len(data))
        chunks = sealer.seal(data)
        if bent:
            chunks[1] = chunks[1][:7] + bytes([chunks[1][7] ^ 1]) + chunks[1][8:]
        spool = tmp_path / f"{recipient is key}-{bent}.inputs"
        await receive_inputs(RecordingGate(chunks), _request(len(data), sealer.preamble),
                             DEAL_ID, spool, 2**30)
        why = uncommitted(spool, key, context, NONCE, committed)
        assert (why is None) == opens, why
        assert opens or "do not open" in why


async def test_inputs_other_than_the_job_offer_committed_to_are_named_so(tmp_path):
    key = PrivateKey.generate()
    context = wire.INPUTS_CONTEXT + DEAL_ID
    committed = hashlib.sha256(NONCE + b"the committed inputs").digest()
    for data, nonce, matches in ((b"the committed inputs", NONCE, True),
                                 (b"other inputs", NONCE, False),
                                 (b"the committed inputs", b"\x08" * 32, False)):
        sealer = wire.ChunkSealer(key.public_key, context, len(data))
        spool = tmp_path / f"{data[:5]!r}-{nonce[0]}.inputs"
        await receive_inputs(RecordingGate(sealer.seal(data)),
                             _request(len(data), sealer.preamble), DEAL_ID, spool, 2**30)
        why = uncommitted(spool, key, context, nonce, committed)
        assert (why is None) == matches
        assert matches or "not the ones the deal's job offer committed to" in why


async def _deliver(tmp_path, written, result_hash, provider):
    """The provider's output spool `written` sent as the result stream and received."""
    client = PrivateKey.generate()
    spool = tmp_path / "d.output.tar"
    spool.write_bytes(written)
    preamble, size, chunks = output_body(spool, bytes(client.public_key), DEAL_ID)
    answer = wire.JobResultMessage(deal_id=DEAL_ID, result_hash=result_hash,
                                   provider_signature=b"\1" * 65, output_preamble=preamble,
                                   output_bytes=size)
    result = tmp_path / "results" / "d.tar"
    return await receive_output(answer, chunks(), client, result, 2**30, provider), result


async def test_a_failure_report_in_the_output_spool_arrives_as_the_failure(tmp_path):
    provider = Identity.generate()
    claim = FailureClaim(FailureClass.EXIT, 3)
    report = FailureReport(claim, 5, 1, 2, 3, b"logs").signed(provider.eth_account())
    failure, result = await _deliver(tmp_path, report.encode(), claim.digest(), provider.address)
    assert failure == report and result.read_bytes() == report.encode()
    assert result.stat().st_mode & 0o777 == 0o600
    output = b"an output tarball"
    failure, result = await _deliver(tmp_path, output, hashlib.sha256(output).digest(),
                                     provider.address)
    assert failure is None and result.read_bytes() == output
    result.unlink()
    # The same report from a provider other than the deal's is refused, and nothing is kept.
    with pytest.raises(BadOutput, match="not signed by the deal's provider"):
        await _deliver(tmp_path, report.encode(), claim.digest(), Identity.generate().address)
    assert list((tmp_path / "results").iterdir()) == []


async def test_spooled_inputs_are_resealed_to_a_mediator_for_mediation_only(tmp_path):
    """A party's spool re-sealed to a mediator opens with the mediator's key as the same
    plaintext, under the mediation context only (not as a job's input stream)."""
    from lilypad_p2p.exec._job_stream import open_spool, write_spool
    from lilypad_p2p.roles._transfer import SpooledInputs, mediation_context

    own, mediator = PrivateKey.generate(), PrivateKey.generate()
    spool = tmp_path / "c.inputs"
    files = {"data.bin": os.urandom(2 * wire.CHUNK_BYTES + 9)}
    write_spool(spool, own.public_key, b"own:", files, {"n": 1})
    plaintext = b"".join(open_spool(spool, own, b"own:"))
    outgoing = SpooledInputs(spool, own, b"own:").resealed(bytes(mediator.public_key),
                                                           mediation_context(DEAL_ID))
    assert outgoing.size == len(plaintext)
    chunks = [chunk async for chunk in outgoing.chunks()]
    opener = wire.ChunkOpener(mediator, outgoing.preamble, mediation_context(DEAL_ID),
                              outgoing.size)
    assert b"".join(opener.open(chunk) for chunk in chunks) == plaintext and opener.finished
    as_job = wire.ChunkOpener(mediator, outgoing.preamble, wire.INPUTS_CONTEXT + DEAL_ID,
                              outgoing.size)
    with pytest.raises(wire.ChunkStreamError):
        as_job.open(chunks[0])
