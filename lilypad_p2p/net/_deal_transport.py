"""The deal protocols as the roles see them: typed, by string peer ID, with no libp2p types.

    /lilypad/deal/2    propose a signed deal, get the provider's acceptance (or a refusal)
    /lilypad/job/4     stream the sealed inputs of an accepted deal (the provider then opens
                       it on chain), get the signed result and the sealed outputs as a stream
                       (`_transfer.py`)
    /lilypad/result/1  send the signed acceptance, get an acknowledgement
    /lilypad/mediation/3  stream a disputed job's sealed inputs to a mediator, get its signed
                       verdict (`_transfer.py`, as `/lilypad/job/4`)
    /lilypad/module/1  ask a job creator for a module's definition, get its canonical bytes

Each protocol is a `StreamProtocol[Request, Answer]`, so a call names what it sends and gets
back: `await transport.request(peer, DEAL_STREAM, proposal)` is typed as an acceptance
or a refusal. `DealTransport` is what a role is given: `net.DealStreams` over a libp2p host,
or `testing.MemoryNetwork`'s transports in a test. A peer is named by its base58 peer ID
(`wire.NodeRecord.peer_id`); a role that finds a peer cheating says so with `report`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from lilypad_p2p import wire
from lilypad_p2p.net._peer_actions import PeerAction

if TYPE_CHECKING:
    from lilypad_p2p.net._transfer import BodyGate, ChunkSource, Reply

DEAL_PROTOCOL = "/lilypad/deal/2"
JOB_PROTOCOL = "/lilypad/job/4"
RESULT_PROTOCOL = "/lilypad/result/1"
MEDIATION_PROTOCOL = "/lilypad/mediation/3"
MODULE_PROTOCOL = "/lilypad/module/1"
MAX_SMALL_BYTES = 64 * 1024
# A role's reason for a report is cut to this: it goes into logs, and may quote the peer.
REPORT_REASON_CHARS = 200

Request = TypeVar("Request", bound=wire.DealMessage)
Answer = TypeVar("Answer", bound=wire.DealMessage)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StreamProtocol(Generic[Request, Answer]):
    """One request/response protocol: its ID, size bounds and message types."""

    protocol_id: str
    max_request_bytes: int
    max_response_bytes: int
    requests: tuple[type[Request], ...]
    responses: tuple[type[Answer], ...]
    # A transfer's body only from a peer we have an open deal with. A mediator's peers have
    # no deal with it: its handler checks that the deal names it, on chain, instead.
    body_needs_deal: bool = True


DEAL_STREAM: StreamProtocol[wire.DealProposal, wire.DealAccepted | wire.DealRefused] = (
    StreamProtocol(DEAL_PROTOCOL, MAX_SMALL_BYTES, MAX_SMALL_BYTES,
                   (wire.DealProposal,), (wire.DealAccepted, wire.DealRefused)))
# Frames only: the inputs and outputs follow as bodies (`_transfer.py`).
JOB_STREAM: StreamProtocol[
    wire.JobRequest, wire.SendInputs | wire.JobResultMessage | wire.DealRefused] = (
    StreamProtocol(JOB_PROTOCOL, MAX_SMALL_BYTES, MAX_SMALL_BYTES, (wire.JobRequest,),
                   (wire.SendInputs, wire.JobResultMessage, wire.DealRefused)))
RESULT_STREAM: StreamProtocol[wire.AcceptanceNotice, wire.AcceptanceAck | wire.DealRefused] = (
    StreamProtocol(RESULT_PROTOCOL, MAX_SMALL_BYTES, MAX_SMALL_BYTES,
                   (wire.AcceptanceNotice,), (wire.AcceptanceAck, wire.DealRefused)))
# Frames only: the inputs, re-sealed to the mediator, follow as a body (`_transfer.py`).
MEDIATION_STREAM: StreamProtocol[
    wire.MediationRequest, wire.SendInputs | wire.VerdictNotice | wire.DealRefused] = (
    StreamProtocol(MEDIATION_PROTOCOL, MAX_SMALL_BYTES, MAX_SMALL_BYTES,
                   (wire.MediationRequest,),
                   (wire.SendInputs, wire.VerdictNotice, wire.VerdictWithOutput,
                    wire.DealRefused),
                   body_needs_deal=False))
# A module definition: at most 64 KiB (wire/_module_messages.py) plus framing.
MODULE_STREAM: StreamProtocol[wire.ModuleRequest, wire.ModuleDefinition | wire.DealRefused] = (
    StreamProtocol(MODULE_PROTOCOL, MAX_SMALL_BYTES, 2 * MAX_SMALL_BYTES,
                   (wire.ModuleRequest,), (wire.ModuleDefinition, wire.DealRefused)))
PROTOCOLS: dict[str, StreamProtocol[wire.DealMessage, wire.DealMessage]] = {
    p.protocol_id: p  # type: ignore[misc]
    for p in (DEAL_STREAM, JOB_STREAM, RESULT_STREAM, MEDIATION_STREAM, MODULE_STREAM)
}

RequestHandler = Callable[[str, Request], Awaitable[Answer]]
TransferHandler = Callable[[str, Request, "BodyGate"], Awaitable["Reply"]]
OnAnswer = Callable[[wire.DealMessage, AsyncIterator[bytes] | None], Awaitable[T]]


class DealTransport(Protocol):
    """The deal streams a role asks and serves, and where it reports a cheating peer.

    Asking raises `NetError` (unreachable peer, broken or stalled stream) or `wire.WireError`
    (the peer answered garbage; the transport has reported it already). Bound a call with
    `trio.fail_after` at the call site: a job's answer takes as long as the job.
    """

    async def request(self, peer: str, protocol: StreamProtocol[Request, Answer],
                      message: Request, *, addrs: Sequence[str] = ()) -> Answer:
        """Send `message` to `peer` and return its answer. `addrs` are the peer's advertised
        multiaddrs (its NodeRecord's), used when we are not connected."""
        ...

    async def exchange(self, peer: str, protocol: StreamProtocol[Request, Answer],
                       message: Request, *, inputs: ChunkSource, on_answer: OnAnswer[T],
                       addrs: Sequence[str] = ()) -> T:
        """A transfer (`_transfer.py`): `message`, the `inputs` chunks if the peer asks for
        them, and `on_answer(answer, its body's chunks)`, whose result is returned."""
        ...

    def serve(self, protocol: StreamProtocol[Request, Answer],
              handler: RequestHandler[Request, Answer]) -> None:
        """Answer `protocol` requests with `handler(peer, request)`."""
        ...

    def serve_transfer(self, protocol: StreamProtocol[Request, Answer],
                       handler: TransferHandler[Request]) -> None:
        """Answer `protocol` transfers with `handler(peer, request, gate)`."""
        ...

    def report(self, peer: str, action: PeerAction, reason: str) -> None:
        """`peer` sent something only a cheat or a broken build sends: lower its standing.
        The transport keeps the first REPORT_REASON_CHARS of `reason`."""
        ...
