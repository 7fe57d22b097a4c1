"""Offer sync: peers pull each other's current offers (and NodeRecords), by digest.

Gossip only carries what is published while a node listens, and owners re-publish only every
few minutes (each round is gossiped to every node). So peers pull instead: on every new
connection, and every `ANTI_ENTROPY_INTERVAL_S` (up to `ANTI_ENTROPY_MAX_INTERVAL_S` while
pulls find nothing) from one random connected peer, a node asks,
over `/lilypad/sync/2.0.0`, for the signed envelopes the peer holds on the markets the asker
follows, plus the NodeRecords it holds, naming the digests of the envelopes it already has; the
answer carries only the others (and a server that finds digests it lacks among them pulls back
from the asker). A newcomer learns the market at once, and an offer that a
partition or a lost message kept from part of the network spreads epidemically, at a cost per
round of one small request when nothing is missing (Golem's market pulls after gossip too).
What goes in the answer is the server's choice (`Snapshot`). The answer is untrusted like any
gossip: each envelope goes through the same checks (size, schema, signature, expiry, freshness,
market) before it reaches the node, and a peer that sends invalid ones is reported.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Collection, Sequence

import trio
from libp2p.abc import IHost, INetStream
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from lilypad_p2p import wire
from lilypad_p2p.net._containment import reset_quietly
from lilypad_p2p.net._params import ANTI_ENTROPY_INTERVAL_S, ANTI_ENTROPY_MAX_INTERVAL_S
from lilypad_p2p.net._streams import close_quietly, frame, read_frame

logger = logging.getLogger(__name__)

OFFER_SYNC_PROTOCOL = TProtocol("/lilypad/sync/2.0.0")
# Bounds on one exchange: the request names markets and known digests, the answer carries
# envelopes.
MAX_SYNC_ENVELOPES = 2000
DIGEST_BYTES = 8
MAX_SYNC_REQUEST_BYTES = 1024 + MAX_SYNC_ENVELOPES * (DIGEST_BYTES + 2)
MAX_SYNC_RESPONSE_BYTES = 4 * 1024 * 1024
MAX_SYNC_MARKETS = 16
SYNC_TIMEOUT_S = 10.0

# Our envelopes on some markets, for an asker (None: for our own request, naming what we hold).
Snapshot = Callable[[Sequence[str], ID | None], list[bytes]]


class SyncResponseInvalid(wire.MalformedMessage):
    """The peer's sync answer is not a bounded list of envelope bytes."""


def digest(envelope: bytes) -> bytes:
    """What names an envelope in a sync request: short, since a collision only means one
    envelope is not pulled this round (the next round, from another peer, differs)."""
    return hashlib.blake2b(envelope, digest_size=DIGEST_BYTES).digest()


def encode_request(markets: Sequence[str], known: Collection[bytes] = ()) -> bytes:
    return wire.encode({"markets": list(markets[:MAX_SYNC_MARKETS]),
                        "known": sorted(known)[:MAX_SYNC_ENVELOPES]})


def decode_request(data: bytes) -> tuple[list[str], frozenset[bytes]]:
    request = wire.decode(data, max_bytes=MAX_SYNC_REQUEST_BYTES)
    if not isinstance(request, dict) or set(request) != {"markets", "known"}:
        raise wire.MalformedMessage("sync request must be {markets: [...], known: [...]}")
    markets, known = request["markets"], request["known"]
    if (
        not isinstance(markets, list)
        or len(markets) > MAX_SYNC_MARKETS
        or not all(isinstance(m, str) and wire.MARKET_NAME.fullmatch(m) for m in markets)
    ):
        raise wire.MalformedMessage("sync request markets must be market names")
    if (
        not isinstance(known, list)
        or len(known) > MAX_SYNC_ENVELOPES
        or not all(isinstance(d, bytes) and len(d) == DIGEST_BYTES for d in known)
    ):
        raise wire.MalformedMessage(
            f"sync request known must be a list of {DIGEST_BYTES}-byte digests")
    return markets, frozenset(known)


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


def next_pull_pause_s(pause_s: float, learnt: int | None) -> float:
    """The pause before the next anti-entropy pull: doubled (up to the maximum) after a pull
    that answered with nothing new, back to the base after one that learnt something or got no
    answer (a partition heals unseen; keep asking)."""
    if learnt == 0:
        return min(2 * pause_s, ANTI_ENTROPY_MAX_INTERVAL_S)
    return ANTI_ENTROPY_INTERVAL_S


class OfferSync:
    """Serves our offers to peers and pulls theirs; validation is the caller's."""

    def __init__(self, host: IHost, snapshot: Snapshot, *,
                 asker_holds_more: Callable[[ID, Sequence[str]], None] = lambda *_: None) -> None:
        self._host = host
        self._snapshot = snapshot
        # Told when an asker names digests we do not hold: it has something we lack.
        self._asker_holds_more = asker_holds_more
        self.served = 0
        self.pulled = 0

    def install(self) -> None:
        self._host.set_stream_handler(OFFER_SYNC_PROTOCOL, self._serve)

    async def _serve(self, stream: INetStream) -> None:
        answered = False
        try:
            with trio.move_on_after(SYNC_TIMEOUT_S):
                request = await read_frame(stream, MAX_SYNC_REQUEST_BYTES)
                markets, known = decode_request(request)
                asker = stream.muxed_conn.peer_id
                ours = {digest(envelope): envelope for envelope in self._snapshot(markets, asker)}
                missing = [envelope for key, envelope in ours.items() if key not in known]
                await stream.write(frame(encode_response(missing)))
                self.served += 1
                answered = True
                if not known <= ours.keys():
                    self._asker_holds_more(asker, markets)
        except Exception as error:  # boundary: a bad or vanished asker costs us nothing more
            logger.debug("serving offer sync failed: %r", error)
        finally:
            if answered:
                await close_quietly(stream)
            else:  # timed out or failed: the stream must not outlive this handler
                await reset_quietly(stream)

    async def pull(self, peer_id: ID, markets: Sequence[str]) -> list[bytes] | None:
        """The envelopes `peer_id` holds for `markets` that our own snapshot lacks; None if it
        does not answer in time.

        Raises:
            SyncResponseInvalid, OversizedMessage: the peer answered with garbage.
        """
        with trio.move_on_after(SYNC_TIMEOUT_S):
            try:
                stream = await self._host.new_stream(peer_id, [OFFER_SYNC_PROTOCOL])
            except Exception as error:  # boundary: peer left, or an old version without sync
                logger.debug("offer sync with %s not possible: %r", peer_id, error)
                return None
            try:
                known = {digest(envelope) for envelope in self._snapshot(markets, None)}
                await stream.write(frame(encode_request(markets, known)))
                envelopes = decode_response(await read_frame(stream, MAX_SYNC_RESPONSE_BYTES))
            except wire.WireError:
                raise
            except Exception as error:  # boundary: the stream broke mid-way: nothing learnt
                logger.debug("offer sync with %s broke: %r", peer_id, error)
                return None
            finally:
                await close_quietly(stream)
            self.pulled += 1
            return envelopes
        return None
