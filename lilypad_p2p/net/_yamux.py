"""Our changes to py-libp2p 0.8.1's Yamux, each small and pinned by a test.

`GuardedYamux.close`: the library's `Yamux.close` first takes the stream lock and writes a
GO_AWAY frame, and only then closes the socket. A close that is cancelled at either await (a
node or task shutting down, a disconnect under a deadline) or that waits on a peer which stopped
reading left the socket open for good: the peer never saw the connection end, so its swarm
never reported the disconnection (a `PeerLeft` missing in about one run of two of
`test_net_mesh`), and our side leaked the file descriptor. Mplex closes the socket first and did
not have this. Ours bounds the polite part by `GO_AWAY_TIMEOUT_S` and closes the socket on every
path (shielded when cancelled), so a cancelled close still ends the connection.

`MuxerClassMultistream.new_conn`: the library's muxer negotiation builds a plain `Yamux` whenever
Yamux is chosen, whatever class the host was given for it; ours builds the class the host was
given (as the library already does for every other muxer), so `GuardedYamux` is what runs.

`TunedYamuxStream._auto_tune_and_send_window_update`: the library returns receive-window credit
after nearly every read (`PY_YAMUX_RELEASE_ON_READ`, on by default), so each gossip message cost
a second Noise frame, written, read and decrypted, in the opposite direction. Ours returns credit
the way go-yamux does: once half the window has been consumed (still auto-tuning the window),
so the sender is never short while reads keep up. `GuardedYamux._write_frame` writes without
the library's per-frame header parse and debug formatting. Figures: benchmarks/RESULTS.md
("Gossip on Yamux and Mplex").

Fewer scheduler passes per frame: py-libp2p takes three to five locks per frame, each a pass
through trio's scheduler although nothing contends. `GuardedYamux` swaps the connection's and
each stream's locks for `EagerLock`s (`_eager_lock.py`: taken at once when free), has the layers
under it read ahead and take whole Noise frames in one step (`_secure_channel.py`), and
`TunedYamuxStream.write` sends a frame that fits the send window without the stream's writer
and window locks; a DATA frame's body that the secure session already holds is taken without
the timeout scope the library opens for each. Gossip at 50 nodes, 20 offers/s: RESULTS.md
("Gossip at 20 offers/s").

`RTT_MEASURE_INTERVAL`: the library pings every connection every 30 s to measure its RTT, which
only sizes the receive-window growth. With 10-20 connections per node that was about a third of
an idle node's task steps (ping, pong, two frame reads, on both nodes). Ours measures at the
start of each connection, as the library does, then every `RTT_MEASURE_INTERVAL_S`; the
library reads the module's constant on every round, so setting it is the whole change.
"""

from __future__ import annotations

import logging
import struct
from typing import Any

import libp2p.stream_muxer.yamux.yamux as library_yamux
import trio
from libp2p.abc import IHost, IMuxedConn, ISecureConn
from libp2p.peer.id import ID
from libp2p.stream_muxer.muxer_multistream import MuxerMultistream
from libp2p.stream_muxer.yamux.yamux import (
    GO_AWAY_NORMAL,
    HEADER_SIZE,
    MAX_MESSAGE_SIZE,
    TYPE_DATA,
    YAMUX_HEADER_FORMAT,
    Yamux,
    YamuxStream,
)

from lilypad_p2p.net._eager_lock import make_eager
from lilypad_p2p.net._secure_channel import LeanSecureSession, adopt_lean_layers

logger = logging.getLogger(__name__)

# How long a close may spend telling the peer (GO_AWAY) before it just closes the socket.
GO_AWAY_TIMEOUT_S = 2.0
# Pause between a connection's RTT pings after the first (library: 30 s).
RTT_MEASURE_INTERVAL_S = 300
library_yamux.RTT_MEASURE_INTERVAL = RTT_MEASURE_INTERVAL_S


class TunedYamuxStream(YamuxStream):
    """A Yamux stream that returns window credit in halves of the window, as go-yamux does,
    and writes a frame that fits the send window without taking its writer and window locks."""

    async def write(self, data: bytes) -> None:
        size = len(data)
        if (
            0 < size <= min(self.send_window, MAX_MESSAGE_SIZE - HEADER_SIZE)
            and not (self.send_closed or self.closed)
            and self.rw_lock._writer_lock.value  # no other writer of this stream mid-write
            and not self.window_lock.locked()
        ):
            # The library's single-frame case: nothing awaits between the window check and
            # its debit, so no task can interleave, and the frame joins the connection's
            # write queue in the order writers arrived, as through the locks.
            self.send_window -= size
            header = struct.pack(YAMUX_HEADER_FORMAT, 0, TYPE_DATA, 0, self.stream_id, size)
            await self.conn._write_frame(header + data)
            return
        await super().write(data)

    async def _auto_tune_and_send_window_update(self, *, bytes_read: int = 0) -> None:
        # Synchronous bookkeeping (no await until the frame is written), so no lock is needed.
        self._pending_recv_release += bytes_read
        buffered = len(self.conn.stream_buffers.get(self.stream_id, b""))
        threshold = self._grow_threshold()
        if self._pending_recv_release < max(threshold, 1):
            return
        self._pending_recv_release = 0
        increment = self._grow_to_delta(buffered) + self._apply_autotune_epoch(buffered)
        if increment > 0:
            await self.send_window_update(increment)


class GuardedYamux(Yamux):
    """Yamux whose `close` always closes the socket, even when cancelled or the peer is stuck,
    with cheaper frame writes and go-yamux's window-credit rule (see the module notes)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        make_eager(self, "_write_lock")
        make_eager(self, "streams_lock")
        adopt_lean_layers(self.secured_conn)

    async def open_stream(self) -> YamuxStream:
        return _tuned(await super().open_stream())

    async def accept_stream(self) -> YamuxStream:
        stream = await super().accept_stream()
        assert isinstance(stream, YamuxStream)
        return _tuned(stream)

    async def _read_data_body(self, length: int) -> bytes:
        # The library bounds every DATA frame's body read by a timeout scope; a body the
        # secure session already holds is handed over without waiting, so it needs none.
        session = self.secured_conn
        if type(session) is LeanSecureSession:
            body = session.take_buffered(length)
            if body is not None:
                return body
        return await super()._read_data_body(length)

    async def _write_frame(self, data: bytes) -> None:
        async with self._write_lock:  # an `EagerLock` (`__init__`)
            await self.secured_conn.write(data)

    async def close(self, error_code: int = GO_AWAY_NORMAL) -> None:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._unstick_close)
                await super().close(error_code)
                nursery.cancel_scope.cancel()
        finally:
            if not self.event_closed.is_set():  # cancelled before the socket was closed
                self.event_shutting_down.set()
                # Shielded: closing a trio socket does not block, and it must happen even when
                # the caller is being cancelled. The frame loop then fails its read and runs the
                # library's cleanup (streams ended, `on_close` telling the swarm).
                with trio.CancelScope(shield=True):
                    await self._close_socket()
                self.event_closed.set()

    async def _unstick_close(self) -> None:
        # A peer that stopped reading blocks the GO_AWAY write; closing the socket fails that
        # write, and the library's close goes on as after any failed GO_AWAY.
        await trio.sleep(GO_AWAY_TIMEOUT_S)
        await self._close_socket()

    async def _close_socket(self) -> None:
        try:
            await self.secured_conn.close()
        except Exception as error:  # boundary: a broken transport is closed either way
            logger.debug("closing a Yamux connection's socket: %r", error)


class MuxerClassMultistream(MuxerMultistream):
    """Muxer negotiation that builds the negotiated protocol's class for Yamux too."""

    async def new_conn(self, conn: ISecureConn, peer_id: ID) -> IMuxedConn:
        protocol, transport_class = await self._selector.select(
            conn, conn.is_initiator, self.negotiate_timeout
        )
        return self._annotate_connection(transport_class(conn, peer_id), conn, protocol)


def use_muxer_classes(host: IHost) -> None:
    """Make `host` build the muxer classes it was configured with (see the module notes)."""
    upgrader = host.get_network().upgrader  # type: ignore[attr-defined]
    library = upgrader.muxer_multistream
    ours = MuxerClassMultistream({}, library.negotiate_timeout)
    for protocol, transport in library.transports.items():
        ours.add_transport(protocol, transport)
    upgrader.muxer_multistream = ours


def _tuned(stream: YamuxStream) -> YamuxStream:
    # The library builds its `YamuxStream`s inside its frame loop; the subclass only replaces
    # a method and adds no state, so the stream is retyped before anyone reads from it.
    stream.__class__ = TunedYamuxStream
    make_eager(stream, "window_lock")
    return stream
