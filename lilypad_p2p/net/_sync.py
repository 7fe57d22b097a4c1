"""Offer sync: a node that meets a peer pulls the peer's current offers (and NodeRecords) once.

Gossip only carries what is published while a node listens; owners re-publish every 60 s, so a
newcomer would otherwise wait that long to see the market. On every new connection each side
asks the other, over `/lilypad/sync/1.0.0`, for the signed envelopes it holds on the markets the
asker follows, plus the NodeRecords it holds (Golem's market does the same pull after gossip).
What goes in the answer is the server's choice (`Snapshot`). The answer is untrusted like any
gossip: each envelope goes through the same checks (size, schema, signature, expiry, freshness,
market) before it reaches the node, and a peer that sends invalid ones is reported.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import trio
from libp2p.abc import IHost, INetStream
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from lilypad_p2p import wire
from lilypad_p2p.net._containment import reset_quietly
from lilypad_p2p.net._streams import close_quietly, frame, read_frame

logger = logging.getLogger(__name__)

OFFER_SYNC_PROTOCOL = TProtocol("/lilypad/sync/1.0.0")
# Bounds on one exchange: the request names markets, the answer carries envelopes.
MAX_SYNC_REQUEST_BYTES = 4096
MAX_SYNC_RESPONSE_BYTES = 4 * 1024 * 1024
MAX_SYNC_ENVELOPES = 2000
MAX_SYNC_MARKETS = 16
SYNC_TIMEOUT_S = 10.0

Snapshot = Callable[[Sequence[str]], list[bytes]]


class SyncResponseInvalid(wire.MalformedMessage):
    """The peer's sync answer is not a bounded list of envelope bytes."""


def encode_request(markets: Sequence[str]) -> bytes:
    return wire.encode({"markets": list(markets[:MAX_SYNC_MARKETS])})


def decode_request(data: bytes) -> list[str]:
    request = wire.decode(data)
    if not isinstance(request, dict) or set(request) != {"markets"}:
        raise wire.MalformedMessage("sync request must be {markets: [...]}")
    markets = request["markets"]
    if (
        not isinstance(markets, list)
        or len(markets) > MAX_SYNC_MARKETS
        or not all(isinstance(m, str) and wire.MARKET_NAME.fullmatch(m) for m in markets)
    ):
        raise wire.MalformedMessage("sync request markets must be market names")
    return markets


def encode_response(envelopes: Sequence[bytes]) -> bytes:
    chosen: list[bytes] = []
    size = 0
    for envelope in envelopes[:MAX_SYNC_ENVELOPES]:
        size += len(envelope) + 8
        if size > MAX_SYNC_RESPONSE_BYTES - 64:
            break
        chosen.append(envelope)
    return wire.encode({"envelopes": chosen})


def decode_response(data: bytes) -> list[bytes]:
    try:
        response = wire.decode(data, max_bytes=MAX_SYNC_RESPONSE_BYTES)
    except wire.WireError as error:
        raise SyncResponseInvalid(f"sync answer does not decode: {error}") from error
    if not isinstance(response, dict) or set(response) != {"envelopes"}:
        raise SyncResponseInvalid("sync answer must be {envelopes: [...]}")
    envelopes = response["envelopes"]
    if (
        not isinstance(envelopes, list)
        or len(envelopes) > MAX_SYNC_ENVELOPES
        or not all(isinstance(e, bytes) for e in envelopes)
    ):
        raise SyncResponseInvalid("sync answer envelopes must be a bounded list of bytes")
    return envelopes


class OfferSync:
    """Serves our offers to peers and pulls theirs; validation is the caller's."""

    def __init__(self, host: IHost, snapshot: Snapshot) -> None:
        self._host = host
        self._snapshot = snapshot
        self.served = 0
        self.pulled = 0

    def install(self) -> None:
        self._host.set_stream_handler(OFFER_SYNC_PROTOCOL, self._serve)

    async def _serve(self, stream: INetStream) -> None:
        answered = False
        try:
            with trio.move_on_after(SYNC_TIMEOUT_S):
                request = await read_frame(stream, MAX_SYNC_REQUEST_BYTES)
                markets = decode_request(request)
                await stream.write(frame(encode_response(self._snapshot(markets))))
                self.served += 1
                answered = True
        except Exception as error:  # boundary: a bad or vanished asker costs us nothing more
            logger.debug("serving offer sync failed: %r", error)
        finally:
            if answered:
                await close_quietly(stream)
            else:  # timed out or failed: the stream must not outlive this handler
                await reset_quietly(stream)

    async def pull(self, peer_id: ID, markets: Sequence[str]) -> list[bytes]:
        """The envelopes `peer_id` holds for `markets`; [] if it does not answer in time.

        Raises:
            SyncResponseInvalid, OversizedMessage: the peer answered with garbage.
        """
        with trio.move_on_after(SYNC_TIMEOUT_S):
            try:
                stream = await self._host.new_stream(peer_id, [OFFER_SYNC_PROTOCOL])
            except Exception as error:  # boundary: peer left, or an old version without sync
                logger.debug("offer sync with %s not possible: %r", peer_id, error)
                return []
            try:
                await stream.write(frame(encode_request(markets)))
                envelopes = decode_response(await read_frame(stream, MAX_SYNC_RESPONSE_BYTES))
            except wire.WireError:
                raise
            except Exception as error:  # boundary: the stream broke mid-way: nothing learnt
                logger.debug("offer sync with %s broke: %r", peer_id, error)
                return []
            finally:
                await close_quietly(stream)
            self.pulled += 1
            return envelopes
        return []
