"""An in-memory deal network: `DealTransport`s that call each other's handlers directly.

    network = MemoryNetwork()
    provider = ProviderRole(..., transport=network.transport(provider_id.peer_id))
    provider.install()
    client = ClientRole(..., transport=network.transport(client_id.peer_id))

Role tests get a peer without sockets, in no real time (it runs on trio's `MockClock`), and
every message still crosses the real codec: what a `net.DealStreams` refuses is refused here
too. A message its protocol does not carry is a `TypeError`; a request or answer over its
protocol's bound, or not one of its messages, gets its sender reported and the asker a
`StreamRequestFailed` (a bad request: the server resets the stream) or the `WireError` (a bad
answer). A peer not on the network, unplugged or not serving the protocol is unreachable.
Transfer bodies are checked chunk by chunk against their declared sizes, and inputs go only
to a server that says it has an open deal with the asker (`has_open_deal`). What this network
leaves out is the byte budgets of `net/_admission.py`, which the real transport's tests cover.
Every `report` lands in `network.reports`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import trio

from lilypad_p2p import wire
from lilypad_p2p.net import (
    ChunkSource,
    PeerAction,
    Reply,
    RequestHandler,
    StreamProtocol,
    StreamRequestFailed,
    TransferHandler,
    TransferRefused,
)
from lilypad_p2p.net._deal_transport import REPORT_REASON_CHARS, Answer, OnAnswer, Request, T
from lilypad_p2p.net._streams import M, decode_body
from lilypad_p2p.net._transfer import ANSWERS_WITH_BODY

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Report:
    """One `DealTransport.report`: who blamed whom, how hard and why."""

    reporter: str
    peer: str
    action: PeerAction
    reason: str


class MemoryNetwork:
    """Peers by peer ID, each with a `MemoryTransport`; and every report any of them made."""

    def __init__(self) -> None:
        self._peers: dict[str, MemoryTransport] = {}
        self.reports: list[Report] = []

    def transport(self, peer_id: object,
                  has_open_deal: Callable[[str], bool] = lambda peer: True) -> MemoryTransport:
        """Put peer `peer_id` (a libp2p `ID` or its text) on the network, or get it again."""
        peer = str(peer_id)
        if peer not in self._peers:
            self._peers[peer] = MemoryTransport(self, peer, has_open_deal)
        return self._peers[peer]

    def unplug(self, peer_id: object) -> None:
        """Take a peer off the network: whoever asks it next finds it unreachable."""
        self._peers.pop(str(peer_id), None)

    def reports_of(self, peer_id: object) -> list[Report]:
        return [report for report in self.reports if report.peer == str(peer_id)]

    def _reach(self, peer: str, protocol_id: str) -> MemoryTransport:
        server = self._peers.get(peer)
        if server is None:
            raise StreamRequestFailed(f"cannot open {protocol_id} to {peer}: not on the network")
        return server


class MemoryTransport:
    """One peer's `DealTransport` on a `MemoryNetwork`."""

    def __init__(self, network: MemoryNetwork, peer_id: str,
                 has_open_deal: Callable[[str], bool]) -> None:
        self.peer_id = peer_id
        self._network = network
        self._has_open_deal = has_open_deal
        self._handlers: dict[str, RequestHandler[Any, Any]] = {}
        self._transfers: dict[str, TransferHandler[Any]] = {}

    def serve(self, protocol: StreamProtocol[Request, Answer],
              handler: RequestHandler[Request, Answer]) -> None:
        self._handlers[protocol.protocol_id] = handler

    def serve_transfer(self, protocol: StreamProtocol[Request, Answer],
                       handler: TransferHandler[Request]) -> None:
        self._transfers[protocol.protocol_id] = handler

    def report(self, peer: str, action: PeerAction, reason: str) -> None:
        self._network.reports.append(
            Report(self.peer_id, peer, action, reason[:REPORT_REASON_CHARS]))

    async def request(self, peer: str, protocol: StreamProtocol[Request, Answer],
                      message: Request, *, addrs: Sequence[str] = ()) -> Answer:
        server = self._open(peer, protocol, message)
        handler = server._handlers.get(protocol.protocol_id)
        if handler is None:
            raise StreamRequestFailed(f"{peer} does not serve {protocol.protocol_id}")
        request = server._take_request(self.peer_id, protocol, message)
        try:
            answer = await handler(self.peer_id, request)
        except Exception:  # as the real server: the asker gets a refusal, the log a trace
            logger.exception("%s handler failed", protocol.protocol_id)
            answer = wire.DealRefused(reason="internal error")
        return self._take_answer(peer, protocol, answer)

    async def exchange(self, peer: str, protocol: StreamProtocol[Request, Answer],
                       message: Request, *, inputs: ChunkSource, on_answer: OnAnswer[T],
                       addrs: Sequence[str] = ()) -> T:
        server = self._open(peer, protocol, message)
        handler = server._transfers.get(protocol.protocol_id)
        if handler is None:
            raise StreamRequestFailed(f"{peer} does not serve {protocol.protocol_id}")
        request = server._take_request(self.peer_id, protocol, message)
        trusted = not protocol.body_needs_deal or server._has_open_deal(self.peer_id)
        gate = _MemoryGate(inputs, trusted)
        try:
            reply = await handler(self.peer_id, request, gate)
        except TransferRefused as error:
            server.report(self.peer_id, PeerAction.MID_TOLERANCE, f"{protocol.protocol_id}: "
                                                                  f"{error}")
            reply = Reply(wire.DealRefused(reason=str(error)[:500]))
        except wire.WireError as error:  # the asker's inputs broke off or did not fit
            server.report(self.peer_id, PeerAction.LOW_TOLERANCE,
                          f"{protocol.protocol_id}: {error}")
            raise StreamRequestFailed(f"{protocol.protocol_id} to {peer} was reset") from error
        except Exception as error:
            if gate.asked:
                raise StreamRequestFailed(f"{protocol.protocol_id} to {peer} broke") from error
            logger.exception("%s handler failed", protocol.protocol_id)
            reply = Reply(wire.DealRefused(reason="internal error"))
        answer = self._take_answer(peer, protocol, reply.answer)
        if isinstance(answer, ANSWERS_WITH_BODY):
            body = reply.body() if reply.body is not None else _no_chunks()
            return await on_answer(answer, _sized_chunks(body, answer.output_bytes))
        return await on_answer(answer, None)

    def _open(self, peer: str, protocol: StreamProtocol[Request, Answer],
              message: Request) -> MemoryTransport:
        if not isinstance(message, protocol.requests):
            raise TypeError(f"{protocol.protocol_id} does not carry {type(message).__name__}")
        return self._network._reach(peer, protocol.protocol_id)

    def _take_request(self, asker: str, protocol: StreamProtocol[Request, Answer],
                      message: Request) -> Request:
        """The request as this server decodes it; garbage gets the asker reported."""
        try:
            return _carried(message, protocol.max_request_bytes, protocol.requests)
        except wire.WireError as error:
            self.report(asker, PeerAction.LOW_TOLERANCE, f"{protocol.protocol_id}: {error}")
            raise StreamRequestFailed(f"{protocol.protocol_id} was reset: {error}") from error

    def _take_answer(self, server: str, protocol: StreamProtocol[Request, Answer],
                     answer: wire.DealMessage) -> Answer:
        """The answer as this asker decodes it; garbage gets the server reported."""
        try:
            return _carried(answer, protocol.max_response_bytes, protocol.responses)
        except wire.WireError as error:
            self.report(server, PeerAction.LOW_TOLERANCE, f"{protocol.protocol_id}: {error}")
            raise


def _carried(message: wire.DealMessage, limit: int, allowed: tuple[type[M], ...]) -> M:
    body = wire.encode(message.to_wire())
    if len(body) > limit:
        raise wire.OversizedMessage(f"frame of {len(body)} bytes, limit {limit}")
    return decode_body(body, limit, allowed)


class _MemoryGate:
    """`BodyGate` over the asker's chunk source: the inputs only for a trusted asker."""

    def __init__(self, inputs: ChunkSource, trusted: bool) -> None:
        self._inputs = inputs
        self._trusted = trusted
        self.asked = False

    async def receive(self, deal_id: bytes, plaintext_bytes: int,
                      sink: Callable[[bytes], Awaitable[None]]) -> None:
        if self.asked:
            raise RuntimeError("a transfer has one body")
        if not self._trusted:
            raise TransferRefused("inputs are taken only from a peer with an agreed deal")
        self.asked = True
        async for chunk in _sized_chunks(self._inputs(), plaintext_bytes):
            await sink(chunk)


async def _sized_chunks(source: AsyncIterator[bytes], plaintext_bytes: int
                        ) -> AsyncIterator[bytes]:
    """`source`'s bytes cut into the chunks a body of `plaintext_bytes` has, as a reader of
    the real stream cuts them; a body that ends short is malformed."""
    sizes = [wire.chunk_size(plaintext_bytes, i) for i in range(wire.chunk_count(plaintext_bytes))]
    pending = b""
    async for data in source:
        pending += data
        while sizes and len(pending) >= sizes[0]:
            chunk, pending = pending[:sizes[0]], pending[sizes.pop(0):]
            await trio.lowlevel.checkpoint()
            yield chunk
    if sizes:
        raise wire.MalformedMessage(f"the body ended {len(sizes)} chunks short")


async def _no_chunks() -> AsyncIterator[bytes]:
    return
    yield
