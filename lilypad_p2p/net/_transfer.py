"""Job transfers: a small request, then bodies of any size as sealed chunk streams.

`/lilypad/job/4` (docs/WIRE.md §6) runs on one stream (`/lilypad/mediation/3` alike, with a
`MediationRequest` and a `VerdictNotice` answer, which has a body only as `VerdictWithOutput`):

    asker  -> JobRequest frame (small: the deal, the inputs' size and preamble)
    server -> SendInputs frame                 (only if it wants the inputs: deal open, fits)
    asker  -> the inputs' sealed chunks        (exactly sealed_size(inputs_bytes) bytes)
    server -> JobResultMessage frame, then the output's sealed chunks (sealed_size(output_bytes))
              or a refused frame

Bodies carry no framing of their own: both sides know every chunk's exact length from the
declared plaintext size (`wire/_chunks.py`), so nothing is ever buffered beyond one chunk and a
size is checked against the limits before its first byte is read. The server asks for inputs
only after its handler checked the deal, from a peer it has an open deal with (`has_open_deal`;
a mediator instead checks that the deal names it and is disputed or open on chain), and holds
one chunk's worth of the peer's in-flight byte budget while reading them.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import trio
from libp2p.abc import INetStream
from libp2p.peer.id import ID

from lilypad_p2p import wire
from lilypad_p2p.net._admission import Admission, Refusal
from lilypad_p2p.net._errors import NetError
from lilypad_p2p.net._read import read_exactly

logger = logging.getLogger(__name__)

# A peer that sends no byte of the next chunk for this long has stalled: the transfer ends.
CHUNK_READ_TIMEOUT_S = 60.0
T = TypeVar("T")

ChunkSource = Callable[[], AsyncIterator[bytes]]
# The answers a body follows (its size is the answer's `output_bytes`).
ANSWERS_WITH_BODY = (wire.JobResultMessage, wire.VerdictWithOutput)


class TransferRefused(NetError):
    """The body is not wanted from this peer: no open deal, or over the byte budgets."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A transfer handler's answer and, for a job result, the source of its sealed chunks."""

    answer: wire.DealMessage
    body: ChunkSource | None = None


async def read_chunks(stream: INetStream, plaintext_bytes: int) -> AsyncIterator[bytes]:
    """The sealed chunks of a body of `plaintext_bytes`, each read whole, one at a time."""
    for index in range(wire.chunk_count(plaintext_bytes)):
        size = wire.chunk_size(plaintext_bytes, index)
        with trio.fail_after(CHUNK_READ_TIMEOUT_S):
            chunk = await read_exactly(stream, size, "a chunk stream")
        yield chunk


class BodyGate(Protocol):
    """What a handler needs of its `InputsGate` (a test passes chunks in directly)."""

    async def receive(
        self, deal_id: bytes, plaintext_bytes: int, sink: Callable[[bytes], Awaitable[None]]
    ) -> None: ...


class InputsGate:
    """Given to a transfer handler: `receive` asks the peer for its body and reads it."""

    def __init__(
        self,
        stream: INetStream,
        peer_id: ID,
        admission: Admission,
        has_open_deal: Callable[[ID], bool],
        write_frame: Callable[[wire.DealMessage], Awaitable[None]],
    ) -> None:
        self._stream = stream
        self._peer_id = peer_id
        self._admission = admission
        self._has_open_deal = has_open_deal
        self._write_frame = write_frame
        self.asked = False

    async def receive(
        self, deal_id: bytes, plaintext_bytes: int, sink: Callable[[bytes], Awaitable[None]]
    ) -> None:
        """Send `SendInputs`, then pass each sealed chunk of the body to `sink`.

        Raises:
            TransferRefused: no open deal with the peer, or no room in its byte budget.
            wire.MalformedMessage: the stream ended early; trio.TooSlowError: it stalled.
        """
        if self.asked:
            raise RuntimeError("a transfer has one body")
        if not self._has_open_deal(self._peer_id):
            self._admission.refuse(Refusal.NO_DEAL)
            raise TransferRefused("inputs are taken only from a peer with an agreed deal")
        held = wire.CHUNK_BYTES + wire.chunk_size(0, 0)
        refusal = self._admission.reserve_bytes(self._peer_id, held)
        if refusal is not None:
            raise TransferRefused(f"too many request bytes in flight ({refusal.value}); "
                                  "retry later")
        self.asked = True
        try:
            await self._write_frame(wire.SendInputs(deal_id=deal_id))
            async for chunk in read_chunks(self._stream, plaintext_bytes):
                await sink(chunk)
        finally:
            self._admission.release_bytes(self._peer_id, held)


async def answer_only(
    answer: wire.DealMessage, body: AsyncIterator[bytes] | None
) -> wire.DealMessage:
    """`on_answer` of a transfer whose answers carry no body (`/lilypad/mediation/3` when no
    output was asked for)."""
    if body is not None:
        raise wire.MalformedMessage(f"{answer.TYPE} with a body is not expected here")
    return answer


async def write_body(stream: INetStream, body: ChunkSource) -> None:
    async for chunk in body():
        await stream.write(chunk)


async def ask(
    stream: INetStream,
    message: wire.DealMessage,
    inputs: ChunkSource,
    read_answer: Callable[[], Awaitable[wire.DealMessage]],
    on_answer: Callable[[wire.DealMessage, AsyncIterator[bytes] | None], Awaitable[T]],
    write_frame: Callable[[wire.DealMessage], Awaitable[None]],
) -> T:
    """The asker's side: send `message`, the inputs if asked, and hand the answer (with the
    chunks of its body, which `on_answer` must consume) to `on_answer`."""
    await write_frame(message)
    answer = await read_answer()
    if isinstance(answer, wire.SendInputs):
        await write_body(stream, inputs)
        answer = await read_answer()
        if isinstance(answer, wire.SendInputs):
            raise wire.MalformedMessage("inputs asked for twice")
    if isinstance(answer, ANSWERS_WITH_BODY):
        return await on_answer(answer, read_chunks(stream, answer.output_bytes))
    return await on_answer(answer, None)
