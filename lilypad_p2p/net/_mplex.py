"""Our Mplex: read errors end one connection, not the node, and streams are full duplex.

Lever 11 of `_levers.py` (the catalogue of our py-libp2p changes), pinned by
`tests/unit/net/test_net_mplex_duplex.py` and `test_net_yamux.py`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import trio
from libp2p.stream_muxer.mplex.datastructures import StreamID
from libp2p.stream_muxer.mplex.exceptions import MplexUnavailable
from libp2p.stream_muxer.mplex.mplex import Mplex
from libp2p.stream_muxer.mplex.mplex_stream import MplexStream

from lilypad_p2p.net._mplex_frames import use_large_frames

logger = logging.getLogger(__name__)


class DuplexStreamLock:
    """Drop-in for `MplexStream.rw_lock` whose reads never wait for writes, nor writes for reads.

    Readers share the stream as before (the library's lock lets many readers in); writers take
    turns so each write's frames stay in order.
    """

    def __init__(self) -> None:
        self._writer = trio.Lock()

    @contextlib.asynccontextmanager
    async def read_lock(self) -> AsyncIterator[None]:
        yield

    @contextlib.asynccontextmanager
    async def write_lock(self) -> AsyncIterator[None]:
        async with self._writer:
            yield


class GuardedMplex(Mplex):
    """Mplex whose read errors end the connection instead of the node, with duplex streams
    written in 64 KiB frames (`_mplex_frames.py`)."""

    async def _initialize_stream(self, stream_id: StreamID, name: str) -> MplexStream:
        stream = await super()._initialize_stream(stream_id, name)
        # A drop-in for the library's lock, which is typed as its concrete class.
        stream.rw_lock = DuplexStreamLock()  # type: ignore[assignment]
        use_large_frames(stream)
        return stream

    async def read_message(self) -> tuple[int, int, bytes]:
        try:
            return await super().read_message()
        except MplexUnavailable:
            raise
        except Exception as error:  # boundary: a peer's corrupt frame must not end the Swarm
            logger.debug("closing a connection after an unreadable frame: %r", error)
            raise MplexUnavailable(f"unreadable frame: {error!r}") from error
