"""Typed events the network hands to the node: only validated envelopes, never raw bytes."""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass

from libp2p.abc import INetConn, INetStream, INetwork, INotifee
from libp2p.peer.id import ID
from multiaddr import Multiaddr

from lilypad_p2p import wire


@dataclass(frozen=True, slots=True)
class EnvelopeReceived:
    """A gossiped envelope that passed validation; `from_peer` handed it to us (the signer is
    inside). Each kind of body has its own subclass, so the node dispatches on the event."""

    envelope: wire.SignedEnvelope
    from_peer: ID


@dataclass(frozen=True, slots=True)
class OfferReceived(EnvelopeReceived):
    """A valid ResourceOffer or JobOffer."""


@dataclass(frozen=True, slots=True)
class ProposalReceived(EnvelopeReceived):
    """A valid MatchProposal from a solver."""


@dataclass(frozen=True, slots=True)
class CancelReceived(EnvelopeReceived):
    """A valid, signed cancellation of an offer."""


@dataclass(frozen=True, slots=True)
class NodeRecordReceived(EnvelopeReceived):
    """A valid NodeRecord (roles, sealing key, markets)."""


@dataclass(frozen=True, slots=True)
class PeerJoined:
    """The first connection to a peer opened."""

    peer_id: ID


@dataclass(frozen=True, slots=True)
class PeerLeft:
    """The last connection to a peer closed."""

    peer_id: ID


EnvelopeEvent = OfferReceived | ProposalReceived | CancelReceived | NodeRecordReceived
NetEvent = EnvelopeEvent | PeerJoined | PeerLeft


def event_for(envelope: wire.SignedEnvelope, from_peer: ID) -> EnvelopeEvent:
    """The event for a validated envelope, by its body's schema."""
    body = envelope.body
    if isinstance(body, wire.ResourceOffer | wire.JobOffer):
        return OfferReceived(envelope, from_peer)
    if isinstance(body, wire.MatchProposal):
        return ProposalReceived(envelope, from_peer)
    if isinstance(body, wire.Cancel):
        return CancelReceived(envelope, from_peer)
    if isinstance(body, wire.NodeRecord):
        return NodeRecordReceived(envelope, from_peer)
    raise TypeError(f"no event for body type {type(body).__name__}")


class ConnectionEvents(INotifee):
    """Turns connection open/close into PeerJoined/PeerLeft (first and last connection only)."""

    def __init__(self, emit: Callable[[NetEvent], None]) -> None:
        self._emit = emit
        self._connections: collections.Counter[ID] = collections.Counter()

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        peer_id = conn.muxed_conn.peer_id
        self._connections[peer_id] += 1
        if self._connections[peer_id] == 1:
            self._emit(PeerJoined(peer_id))

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        peer_id = conn.muxed_conn.peer_id
        self._connections[peer_id] -= 1
        if self._connections[peer_id] <= 0:
            del self._connections[peer_id]
            self._emit(PeerLeft(peer_id))

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        """Streams are not peers."""

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        """Streams are not peers."""

    async def listen(self, network: INetwork, multiaddr: Multiaddr) -> None:
        """Listening is reported by `run` itself."""

    async def listen_close(self, network: INetwork, multiaddr: Multiaddr) -> None:
        """Listening is reported by `run` itself."""
