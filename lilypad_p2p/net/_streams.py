"""Deal streams over a libp2p host: the real `DealTransport` (`_deal_transport.py`).

Framing: a 4-byte big-endian length, then one canonical msgpack deal message
(`wire/_deal_messages.py`); each protocol bounds its request and its answer. The stream is
authenticated by Noise, so the handler learns the asker's peer ID (and address) for free.
A request that is not a valid message of its protocol gets the stream closed and its sender
reported (`report_peer`); the handler's own refusals are answered with `DealRefused`.
Timeouts: the server bounds how long it reads a request; the asker bounds the whole exchange
at its call site (`trio.fail_after`), as a job's answer takes as long as the job.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import trio
from libp2p.abc import IHost, INetStream
from libp2p.custom_types import TProtocol
from libp2p.exceptions import BaseLibp2pError
from libp2p.peer.id import ID
from multiaddr import Multiaddr

from lilypad_p2p import wire
from lilypad_p2p.net._admission import Admission
from lilypad_p2p.net._containment import reset_quietly
from lilypad_p2p.net._deal_transport import (
    REPORT_REASON_CHARS,
    Answer,
    OnAnswer,
    Request,
    RequestHandler,
    StreamProtocol,
    TransferHandler,
)
from lilypad_p2p.net._errors import DialError, NetError
from lilypad_p2p.net._peer_actions import PeerAction
from lilypad_p2p.net._read import read_exactly
from lilypad_p2p.net._transfer import (
    ChunkSource,
    InputsGate,
    Reply,
    TransferRefused,
    ask,
    write_body,
)

logger = logging.getLogger(__name__)

FRAME_HEADER_BYTES = 4
# How long a server waits for a request to arrive in full once the stream is open.
REQUEST_READ_TIMEOUT_S = 30.0
T = TypeVar("T")
M = TypeVar("M", bound=wire.DealMessage)


ReportPeer = Callable[[ID, PeerAction, str], None]
Connect = Callable[[ID, Sequence[str]], Awaitable[None]]


class StreamRequestFailed(NetError):
    """The peer could not be reached, or the stream broke before it answered."""


def frame(body: bytes) -> bytes:
    """`body` behind its length: what `read_frame` reads."""
    return len(body).to_bytes(FRAME_HEADER_BYTES, "big") + body


def encode_frame(message: wire.DealMessage) -> bytes:
    return frame(wire.encode(message.to_wire()))


def decode_body(body: bytes, limit: int, allowed: tuple[type[M], ...]) -> M:
    """The message in one frame's body, if it is one of `allowed`; else MalformedMessage."""
    message = wire.deal_message_from_wire(wire.decode(body, max_bytes=limit))
    if not isinstance(message, allowed):
        raise wire.MalformedMessage(f"{message.TYPE} is not expected here")
    return message


async def read_frame(stream: INetStream, limit: int) -> bytes:
    return await read_exactly(stream, await read_frame_length(stream, limit))


async def read_frame_length(stream: INetStream, limit: int) -> int:
    """A frame's length prefix, checked against `limit` before any of the body is read."""
    length = int.from_bytes(await read_exactly(stream, FRAME_HEADER_BYTES), "big")
    if length > limit:
        raise wire.OversizedMessage(f"frame of {length} bytes, limit {limit}")
    return length


class FrameRefused(NetError):
    """A request frame we will not read: too large for a peer without a deal, or over budget."""


class DealStreams:
    """Serves and asks the deal protocols on one libp2p host: a `DealTransport`.

    A job's inputs are read only from a peer we have an open deal with (`has_open_deal`; a
    mediation's after its handler checked the deal), and every request only while its bytes
    fit the peer's and the node's in-flight budgets (`Admission.reserve_bytes`), checked on the
    length prefix, before the body. Before asking, `connect` dials the peer at the addresses
    it advertised (through a relay's `/p2p-circuit` address when it is behind NAT).
    """

    def __init__(
        self,
        host: IHost,
        report_peer: ReportPeer,
        admission: Admission,
        has_open_deal: Callable[[ID], bool],
        connect: Connect,
    ) -> None:
        self._host = host
        self._report_peer = report_peer
        self._admission = admission
        self._has_open_deal = has_open_deal
        self._connect = connect
        self.served = 0
        self.refused_garbage = 0
        self.refused_frames = 0

    def report(self, peer: str, action: PeerAction, reason: str) -> None:
        self._report_peer(ID.from_base58(peer), action, reason[:REPORT_REASON_CHARS])

    def serve(self, protocol: StreamProtocol[Request, Answer],
              handler: RequestHandler[Request, Answer]) -> None:
        """Answer `protocol` requests with `handler(peer, request)`."""

        async def serve(stream: INetStream) -> None:
            peer_id = stream.muxed_conn.peer_id
            reserved = 0
            try:
                with trio.fail_after(REQUEST_READ_TIMEOUT_S):
                    length = await read_frame_length(stream, protocol.max_request_bytes)
                    self._admit_frame(peer_id, length)
                    reserved = length
                    body = await read_exactly(stream, length)
                request = decode_body(body, protocol.max_request_bytes, protocol.requests)
                await self._answer(stream, protocol, handler, peer_id, request)
            except FrameRefused as error:
                self.refused_frames += 1
                self._report(peer_id, PeerAction.MID_TOLERANCE, protocol, error)
                with contextlib.suppress(Exception):  # the asker may be gone; nothing owed
                    await stream.write(encode_frame(wire.DealRefused(reason=str(error)[:500])))
                await close_quietly(stream)
            except wire.WireError as error:
                self.refused_garbage += 1
                self._report(peer_id, PeerAction.LOW_TOLERANCE, protocol, error)
                await reset_quietly(stream)
            except Exception as error:  # boundary: the asker vanished or was too slow
                logger.debug("reading a %s request failed: %r", protocol.protocol_id, error)
                await reset_quietly(stream)
            finally:
                if reserved:
                    self._admission.release_bytes(peer_id, reserved)

        self._host.set_stream_handler(TProtocol(protocol.protocol_id), serve)

    def serve_transfer(self, protocol: StreamProtocol[Request, Answer],
                       handler: TransferHandler[Request]) -> None:
        """Answer `protocol` transfers (`_transfer.py`) with `handler(peer, request, gate)`."""

        async def serve(stream: INetStream) -> None:
            peer_id = stream.muxed_conn.peer_id

            async def write_frame(message: wire.DealMessage) -> None:
                await stream.write(encode_frame(message))

            try:
                with trio.fail_after(REQUEST_READ_TIMEOUT_S):
                    body = await read_frame(stream, protocol.max_request_bytes)
                request = decode_body(body, protocol.max_request_bytes, protocol.requests)
            except wire.WireError as error:
                self.refused_garbage += 1
                self._report(peer_id, PeerAction.LOW_TOLERANCE, protocol, error)
                await reset_quietly(stream)
                return
            except Exception as error:  # boundary: the asker vanished or was too slow
                logger.debug("reading a %s request failed: %r", protocol.protocol_id, error)
                await reset_quietly(stream)
                return
            has_open_deal = self._has_open_deal if protocol.body_needs_deal else _handler_checks
            gate = InputsGate(stream, peer_id, self._admission, has_open_deal, write_frame)
            try:
                reply = await handler(peer_id.to_base58(), request, gate)
            except TransferRefused as error:
                self.refused_frames += 1
                self._report(peer_id, PeerAction.MID_TOLERANCE, protocol, error)
                reply = Reply(wire.DealRefused(reason=str(error)[:500]))
            except wire.WireError as error:  # its inputs broke off or did not fit
                self.refused_garbage += 1
                self._report(peer_id, PeerAction.LOW_TOLERANCE, protocol, error)
                await reset_quietly(stream)
                return
            except Exception as error:  # boundary: a broken stream, or our handler's bug
                if gate.asked:  # the inputs' stream broke or stalled: nothing owed
                    logger.debug("receiving %s inputs failed: %r", protocol.protocol_id, error)
                    await reset_quietly(stream)
                    return
                logger.exception("%s handler failed", protocol.protocol_id)
                reply = Reply(wire.DealRefused(reason="internal error"))
            try:
                await write_frame(reply.answer)
                if reply.body is not None:
                    await write_body(stream, reply.body)
                self.served += 1
            except Exception as error:  # boundary: the asker went away while we answered
                logger.debug("answering a %s transfer failed: %r", protocol.protocol_id, error)
            finally:
                await close_quietly(stream)

        self._host.set_stream_handler(TProtocol(protocol.protocol_id), serve)

    def _report(self, peer_id: ID, action: PeerAction, protocol: StreamProtocol[Any, Any],
                error: Exception) -> None:
        self._report_peer(peer_id, action, f"{protocol.protocol_id}: {error}")

    def _admit_frame(self, peer_id: ID, length: int) -> None:
        refusal = self._admission.reserve_bytes(peer_id, length)
        if refusal is not None:
            raise FrameRefused(f"too many request bytes in flight ({refusal.value}); retry later")

    async def _answer(
        self,
        stream: INetStream,
        protocol: StreamProtocol[Request, Answer],
        handler: RequestHandler[Request, Answer],
        peer_id: ID,
        request: Request,
    ) -> None:
        answer: wire.DealMessage
        try:
            answer = await handler(peer_id.to_base58(), request)
        except Exception:  # boundary: a handler's bug: the asker gets a refusal, we a trace
            logger.exception("%s handler failed", protocol.protocol_id)
            answer = wire.DealRefused(reason="internal error")
        try:
            await stream.write(encode_frame(answer))
            self.served += 1
        except Exception as error:  # boundary: the stream broke while answering
            logger.debug("answering a %s request failed: %r", protocol.protocol_id, error)
        finally:
            await close_quietly(stream)

    async def request(
        self,
        peer: str,
        protocol: StreamProtocol[Request, Answer],
        message: Request,
        *,
        addrs: Sequence[str] = (),
    ) -> Answer:
        """Send `message` to `peer` and return its answer (`DealTransport.request`).

        Raises:
            StreamRequestFailed: unreachable peer, or the stream broke.
            wire.WireError: the peer answered with garbage (it is reported too).
        """
        peer_id = ID.from_base58(peer)
        stream = await self._open(peer_id, protocol, message, addrs)
        try:
            await stream.write(encode_frame(message))
            body = await read_frame(stream, protocol.max_response_bytes)
        except wire.WireError as error:
            self._report(peer_id, PeerAction.LOW_TOLERANCE, protocol, error)
            raise
        except Exception as error:  # boundary: reset, EOF, closed, whatever the muxer raises
            raise StreamRequestFailed(
                f"{protocol.protocol_id} to {peer} broke: {error!r}") from error
        finally:
            await close_quietly(stream)
        try:
            return decode_body(body, protocol.max_response_bytes, protocol.responses)
        except wire.WireError as error:
            self._report(peer_id, PeerAction.LOW_TOLERANCE, protocol, error)
            raise

    async def exchange(
        self,
        peer: str,
        protocol: StreamProtocol[Request, Answer],
        message: Request,
        *,
        inputs: ChunkSource,
        on_answer: OnAnswer[T],
        addrs: Sequence[str] = (),
    ) -> T:
        """A transfer (`_transfer.ask`; `DealTransport.exchange`).

        Raises:
            StreamRequestFailed: unreachable peer, or the stream broke or stalled.
            wire.WireError: the peer answered with garbage (it is reported too).
        """
        peer_id = ID.from_base58(peer)
        stream = await self._open(peer_id, protocol, message, addrs)

        async def write_frame(frame_message: wire.DealMessage) -> None:
            await stream.write(encode_frame(frame_message))

        async def read_answer() -> wire.DealMessage:
            body = await read_frame(stream, protocol.max_response_bytes)
            return decode_body(body, protocol.max_response_bytes, protocol.responses)

        try:
            return await ask(stream, message, inputs, read_answer, on_answer, write_frame)
        except wire.WireError as error:
            self._report(peer_id, PeerAction.LOW_TOLERANCE, protocol, error)
            raise
        except (BaseLibp2pError, trio.TooSlowError) as error:  # reset, EOF, closed, stalled
            raise StreamRequestFailed(
                f"{protocol.protocol_id} to {peer} broke: {error!r}") from error
        finally:
            await close_quietly(stream)

    async def _open(
        self, peer_id: ID, protocol: StreamProtocol[Request, Answer], message: Request,
        addrs: Sequence[str],
    ) -> INetStream:
        if not isinstance(message, protocol.requests):
            raise TypeError(f"{protocol.protocol_id} does not carry {type(message).__name__}")
        with contextlib.suppress(DialError):  # opening the stream below says why it failed
            await self._connect(peer_id, addrs)
        parsed = []
        for addr in addrs:
            try:
                parsed.append(Multiaddr(addr))
            except ValueError as error:  # a peer's bad address (StringParseError): skip it
                logger.debug("skipping address %r: %r", addr, error)
        if parsed:
            self._host.get_peerstore().add_addrs(peer_id, parsed, 0)
        connected = bool(self._host.get_network().get_connections(peer_id))
        try:
            return await self._host.new_stream(peer_id, [TProtocol(protocol.protocol_id)])
        except Exception as error:  # boundary: libp2p raises a zoo of dial errors
            if connected:
                await self._drop_connections(peer_id)
            raise StreamRequestFailed(
                f"cannot open {protocol.protocol_id} to {peer_id}: {error!r}"
            ) from error

    async def _drop_connections(self, peer_id: ID) -> None:
        """Close a connection on which a new stream could not even be negotiated.

        Such a connection can stay "established" for minutes while nothing gets through it (in
        the 50-node simnet a client failed 25 times in 5 minutes to reach a provider that served
        everyone else); the library would keep reusing it, so the next attempt dials afresh.
        """
        try:
            await self._host.disconnect(peer_id)
        except Exception as error:  # boundary: a peer's connection may be in any state
            logger.debug("dropping the connections to %s: %r", peer_id, error)


def _handler_checks(_: ID) -> bool:
    """A body the handler admits itself (a mediator checks the deal on chain first)."""
    return True


async def close_quietly(stream: INetStream) -> None:
    try:
        await stream.close()
    except Exception:  # boundary: already reset by the other side
        logger.debug("closing a stream failed", exc_info=True)
