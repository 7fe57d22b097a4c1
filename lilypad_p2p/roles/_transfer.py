"""How a deal's inputs and outputs move and rest: spool files and sealed chunk streams.

Both roles keep a job's bytes on disk under `<home>/spool/<role>/` (0700 directory, 0600 files),
never whole in memory:

- client: `<offer cid>.inputs`, the input stream sealed to itself (`exec/_job_stream.py`), made
  at submit; each attempt re-seals it chunk by chunk to the provider. The output arrives into
  `<home>/results/<key>.tar`, opened and hashed chunk by chunk, kept only if its hash is the
  one the provider committed to.
- provider: `<deal key>.inputs`, the input stream exactly as the job creator sealed it (its
  size checked against `max_job_bytes` before the first byte is read); the executor unpacks it
  into the job's private directory. `<deal key>.output.tar`, the canonical output tarball (or,
  when the job itself failed, the signed failure report, `roles/_failure.py`), sealed afresh
  to the job creator for each request.
- mediator: `<deal ID>.inputs`, the input stream as the disputing party re-sealed it to the
  mediator (`/lilypad/mediation/3`), and `<deal ID>.<run>.output.tar`, each run's tarball, hashed
  as it is written; all removed once the verdict is signed (`roles/_mediator.py`).
Either party of a deal streams its own spooled inputs to each mediator, re-sealed chunk by chunk
(`SpooledInputs.resealed`).

The result hash on chain is the sha256 of the plaintext tarball (not of a ciphertext): every
send seals with a fresh key, and mediators re-run the job and hash their own plaintext.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from nacl.public import PrivateKey, PublicKey

from lilypad_p2p import wire
from lilypad_p2p.blocking import run_blocking
from lilypad_p2p.chain import Deal
from lilypad_p2p.deal_detail import ProviderDetail, required
from lilypad_p2p.errors import LilypadError, PeerMisbehaved
from lilypad_p2p.exec._job_stream import open_spool, receive_into, spool_commitment, spool_info
from lilypad_p2p.identity import Identity
from lilypad_p2p.net import BodyGate, ChunkSource, Reply
from lilypad_p2p.roles._failure import BadFailureReport, FailureReport, check_delivered_file
from lilypad_p2p.roles._terms import deal_job_offer
from lilypad_p2p.store import ClientDeal, ProviderDeal

logger = logging.getLogger(__name__)
SPOOL_CONTEXT = b"lilypad/spool-inputs/1:"
# Outputs up to this size are also kept in the deal store (the chain bridge delivers them).
MAX_STORED_RESULT_BYTES = 64 * 1024 * 1024
_READ_PIECE = wire.CHUNK_BYTES


class JobTooLarge(LilypadError):
    """A job's inputs or outputs are over the node's `max_job_bytes`."""



def result_hash(tarball: bytes) -> bytes:
    """The 32-byte result hash on chain: the sha2-256 digest inside the tarball's CID."""
    return hashlib.sha256(tarball).digest()

class BadOutput(PeerMisbehaved):
    """The provider's output stream does not open, or its hash is not the committed one."""


def spool_dir(home: Path, role: str) -> Path:
    path = home / "spool" / role
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def discard(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def inputs_spool(recorded: str | None) -> Path:
    """A deal's spooled inputs, at the path its record holds.

    Raises:
        FileNotFoundError: none recorded or the file is gone (a deal from before inputs were
            spooled): callers retry, and the deal ends at its timeout.
    """
    path = Path(recorded or "")
    if not path.name or not path.is_file():
        raise FileNotFoundError(f"the deal's spooled inputs {str(path)!r} are missing")
    return path


def uncommitted(
    spool: Path, key: PrivateKey, context: bytes, nonce: bytes, committed: bytes
) -> str | None:
    """Why a spool is not the inputs a job offer `committed` to with `nonce` (it does not open
    with `key` under `context`: altered, cut short, sealed to another key; or it holds other
    inputs), or None: read through once, its plaintext dropped."""
    try:
        digest = spool_commitment(spool, key, context, nonce)
    except wire.ChunkStreamError as exc:
        return f"the inputs do not open with this node's sealing key ({exc})"
    if digest != committed:
        return "the inputs are not the ones the deal's job offer committed to (inputs_commitment)"
    return None


def inputs_context(deal_id: bytes) -> bytes:
    return wire.INPUTS_CONTEXT + deal_id


def output_context(deal_id: bytes) -> bytes:
    return wire.OUTPUT_CONTEXT + deal_id


def mediation_context(deal_id: bytes) -> bytes:
    return wire.MEDIATION_CONTEXT + deal_id


def spool_context(offer_cid: str) -> bytes:
    return SPOOL_CONTEXT + offer_cid.encode()


# --- provider and mediator --------------------------------------------------------------

async def receive_inputs(
    gate: BodyGate, request: wire.JobRequest | wire.MediationRequest, deal_id: bytes,
    spool: Path, max_job_bytes: int, *, role: str = "provider",
) -> None:
    """Ask for the request's inputs and spool them to `spool` as they arrive.

    Raises:
        JobTooLarge: declared over `max_job_bytes`, or over the free disk (nothing read).
        TransferRefused, wire.WireError, trio.TooSlowError: from the gate (the stream).
    """
    size = request.inputs_bytes
    if size > max_job_bytes:
        raise JobTooLarge(f"the job's inputs take {size} bytes, over this {role}'s "
                          f"max_job_bytes of {max_job_bytes}")
    needed = wire.sealed_size(size) + len(request.inputs_preamble)
    if shutil.disk_usage(spool.parent).free < needed:
        raise JobTooLarge(f"the job's inputs take {size} bytes, more than this {role}'s free "
                          "disk")
    part = spool.with_suffix(".part")
    discard(part)
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        receive_into(out, size, request.inputs_preamble)

        async def sink(chunk: bytes) -> None:
            await run_blocking(out.write, chunk)

        try:
            await gate.receive(deal_id, size, sink)
        except BaseException:
            discard(part)
            raise
    part.replace(spool)


async def refuse_uncommitted(
    stored: ProviderDeal, deal: Deal, request: wire.JobRequest, spool: Path, identity: Identity,
    *, then: str = "the deal is not opened",
) -> wire.DealRefused | None:
    """A provider's refusal of spooled inputs that do not open, or are other than the deal's job
    offer committed to: it could neither run them nor defend the result before the deal's
    mediators. The spool is removed; `then` says what the refusal means for the deal."""
    if stored.detail.job_offer is None:
        return wire.DealRefused(reason=f"this deal was agreed before inputs were bound to deals; "
                                f"{then}: submit the job again")
    why = await run_blocking(
        uncommitted, spool, identity.sealing_private_key(),
        inputs_context(bytes.fromhex(stored.record.key)), request.inputs_nonce,
        deal_job_offer(deal, stored.detail.job_offer).inputs_commitment)
    if why is None:
        return None
    discard(spool)
    return wire.DealRefused(reason=f"{why}; {then}"[:500])


def output_body(tarball: Path, recipient: bytes, deal_id: bytes) -> tuple[bytes, int, ChunkSource]:
    """The preamble, size and chunks of `tarball` sealed to `recipient` (a fresh key)."""
    size = tarball.stat().st_size
    sealer = wire.ChunkSealer(PublicKey(recipient), output_context(deal_id), size)

    async def chunks() -> AsyncIterator[bytes]:
        with tarball.open("rb") as fh:
            while not sealer.finished:
                piece = await run_blocking(fh.read, _READ_PIECE)
                for chunk in sealer.seal(piece):
                    yield chunk

    return sealer.preamble, size, chunks


def result_reply(tarball: Path, deal_id: bytes, detail: ProviderDetail) -> Reply:
    """The signed result (from a provider's deal `detail`) and its output stream."""
    preamble, size, chunks = output_body(
        tarball, required(detail.output_recipient, "output recipient"), deal_id)
    return Reply(wire.JobResultMessage(
        deal_id=deal_id, result_hash=required(detail.result_hash, "result hash"),
        provider_signature=required(detail.commitment_signature, "commitment"),
        output_preamble=preamble, output_bytes=size), chunks)


def file_digest(path: Path) -> bytes:
    """The sha256 of a file, read a piece at a time."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while piece := fh.read(_READ_PIECE):
            digest.update(piece)
    return digest.digest()


def tamper_output(tarball: Path) -> bytes:
    """The cheating provider's output (test fault): extra end blocks; its new digest."""
    with tarball.open("ab") as fh:
        fh.write(b"\0" * 512)
    return file_digest(tarball)


def keep_output(tarball: Path, digest: bytes, kept: Path) -> None:
    """Keep a mediator's output tarball at `kept` for the job creator if it hashes to `digest`
    (a run that failed in the job leaves no such tarball)."""
    if tarball.is_file() and file_digest(tarball) == digest:
        tarball.replace(kept)


# --- client (and either party, towards mediators) --------------------------------------

@dataclass(frozen=True, slots=True)
class OutgoingInputs:
    """Spooled inputs re-sealed to one recipient (provider or mediator) for one attempt."""

    preamble: bytes
    size: int
    chunks: ChunkSource


@dataclass(frozen=True, slots=True)
class SpooledInputs:
    """A spool this node can open: the client's (`spool_context`) or the provider's
    (`inputs_context`)."""

    spool: Path
    key: PrivateKey
    context: bytes

    def resealed(self, recipient: bytes, context: bytes) -> OutgoingInputs:
        """The spool's plaintext sealed afresh to `recipient` under `context`, chunk by chunk
        as it is sent (the chunks can be drawn once)."""
        spool = self.spool
        size = spool_info(spool).plaintext_bytes
        sealer = wire.ChunkSealer(PublicKey(recipient), context, size)

        async def chunks() -> AsyncIterator[bytes]:
            pieces = open_spool(spool, self.key, self.context)
            while not sealer.finished:
                piece = await run_blocking(next, pieces, None)
                if piece is None:
                    raise wire.ChunkStreamError(f"spool {spool.name} ended early")
                for chunk in sealer.seal(piece):
                    yield chunk

        return OutgoingInputs(sealer.preamble, size, chunks)


def job_request(
    stored: ClientDeal, deal: Deal, chain_id: int, deal_id: bytes, identity: Identity,
    provider_key: bytes,
) -> tuple[wire.JobRequest, OutgoingInputs]:
    """A client's request to run its deal, and its spooled inputs re-sealed to the provider's
    `provider_key` for this attempt."""
    detail = stored.detail
    inputs = SpooledInputs(inputs_spool(detail.inputs_spool), identity.sealing_private_key(),
                           spool_context(stored.record.key)).resealed(
        provider_key, inputs_context(deal_id))
    return wire.JobRequest(
        chain_id=chain_id, deal=wire.deal_to_wire(deal), module=detail.module,
        inputs_preamble=inputs.preamble, inputs_bytes=inputs.size,
        # A deal opened before inputs were bound has no nonce: its provider answers from its
        # record, or refuses.
        inputs_nonce=detail.inputs_nonce or bytes(wire.INPUTS_NONCE_BYTES),
        output_recipient=identity.sealing_public_key,
    ), inputs


async def receive_output(
    answer: wire.JobResultMessage | wire.VerdictWithOutput, chunks: AsyncIterator[bytes],
    own_key: PrivateKey, result: Path, max_job_bytes: int, provider: str,
) -> FailureReport | None:
    """Open the output stream into `result` (0600), checking it is what the provider committed
    to (or, from a mediator, what its verdict upholds): an output tarball hashing to
    `answer.result_hash` (None), or the provider's signed report of the job's own failure whose
    claim hashes to it (the report).

    Raises:
        BadOutput: over `max_job_bytes` (nothing read), a chunk that does not open, or neither
            of the above; `result` is then not left behind.
    """
    if answer.output_bytes > max_job_bytes:
        raise BadOutput(f"an output of {answer.output_bytes} bytes, over max_job_bytes")
    try:
        opener = wire.ChunkOpener(own_key, answer.output_preamble,
                                  output_context(answer.deal_id), answer.output_bytes)
    except wire.ChunkStreamError as exc:
        raise BadOutput(str(exc)) from exc
    result.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    part = result.with_suffix(".part")
    discard(part)
    digest = hashlib.sha256()
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in chunks:
                try:
                    plaintext = opener.open(chunk)
                except wire.ChunkStreamError as exc:
                    raise BadOutput(str(exc)) from exc
                digest.update(plaintext)
                await run_blocking(out.write, plaintext)
        try:
            failure = await run_blocking(
                check_delivered_file, part, digest.digest(), answer.result_hash, provider)
        except BadFailureReport as exc:
            raise BadOutput(str(exc)) from exc
    except BaseException:
        discard(part)
        raise
    part.replace(result)
    return failure


@dataclass(frozen=True, slots=True)
class Delivery:
    """A provider's delivery that matched its commitment, at `path`."""

    path: Path
    failure: FailureReport | None  # the signed report, when the job itself failed


class ResultReceiver:
    """The client's `on_answer` of a job transfer: checks a result's deal and commitment,
    then opens its output into `result`. Returns (answer, the delivery or None when it does
    not match the commitment)."""

    def __init__(self, deal_id: bytes, check_commitment: Callable[[bytes, bytes], None],
                 own_key: PrivateKey, result: Path, max_job_bytes: int, provider: str) -> None:
        self._deal_id, self._check_commitment = deal_id, check_commitment
        self._own_key, self._result, self._max_job_bytes = own_key, result, max_job_bytes
        self._provider = provider

    async def __call__(
        self, answer: wire.DealMessage, chunks: AsyncIterator[bytes] | None
    ) -> tuple[wire.DealMessage, Delivery | None]:
        if not isinstance(answer, wire.JobResultMessage):
            return answer, None
        assert chunks is not None
        if answer.deal_id != self._deal_id:
            raise BadOutput("the result names another deal")
        self._check_commitment(answer.result_hash, answer.provider_signature)
        try:
            failure = await receive_output(answer, chunks, self._own_key, self._result,
                                           self._max_job_bytes, self._provider)
        except BadOutput as exc:
            logger.warning("the output of deal 0x%s is refused: %s", self._deal_id.hex(), exc)
            return answer, None
        return answer, Delivery(self._result, failure)
