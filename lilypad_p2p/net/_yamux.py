"""Our Yamux: py-libp2p 0.8.1's, with receive-window credit returned in batches (lever 13).

The library sends a WINDOW_UPDATE frame after nearly every read: each one is a Noise frame
written by the reader and read, decrypted and locked through by the writer, which made a gossip
delivery on Yamux cost about twice what it costs on Mplex (/work/shared/notes/libp2p.md,
benchmarks/RESULTS.md "Gossip on Yamux and Mplex"). go-yamux returns credit only once half of
the receive window has been consumed (`sendWindowUpdate`: `delta < max/2` returns early); the
library's first branch of `_auto_tune_and_send_window_update` does exactly that, and its three
further branches (pending release, partial slack, release-on-read) send the per-read updates.
`BatchedCreditYamuxStream` keeps the first branch only, window auto-tuning included.

A sender is never stalled by it: it may have a whole window (256 KiB, growing to 16 MiB) in
flight, and we credit as soon as half of it has been read.

The library builds its streams itself (`YamuxStream(...)` inside `open_stream` and inside the
frame loop), so `TunedYamux` hands out our stream class from `open_stream` and `accept_stream`,
the only two ways a stream reaches anyone who reads it. `tests/unit/net/test_net_yamux.py` pins
the library code this relies on.
"""

from __future__ import annotations

from libp2p.abc import IMuxedStream
from libp2p.stream_muxer.yamux.yamux import Yamux, YamuxStream


class BatchedCreditYamuxStream(YamuxStream):
    """A Yamux stream that returns receive-window credit in half-window batches."""

    async def _auto_tune_and_send_window_update(self, *, bytes_read: int = 0) -> None:
        increment = 0
        async with self.window_lock:
            buffered = len(self.conn.stream_buffers.get(self.stream_id, b""))
            consumed = self.target_recv_window - (self.recv_window + buffered)
            if consumed > 0 and consumed >= self._grow_threshold():
                increment = self._grow_to_delta(buffered)
                increment += self._apply_autotune_epoch(buffered)
        if increment > 0:
            await self.send_window_update(increment, skip_lock=True)


def _batched(stream: YamuxStream) -> YamuxStream:
    # Same attributes, one method differs: the class can be swapped in place.
    stream.__class__ = BatchedCreditYamuxStream
    return stream


class TunedYamux(Yamux):
    """Yamux whose streams return window credit in batches (`BatchedCreditYamuxStream`)."""

    async def open_stream(self) -> YamuxStream:
        return _batched(await super().open_stream())

    async def accept_stream(self) -> IMuxedStream:
        stream = await super().accept_stream()
        assert isinstance(stream, YamuxStream)
        return _batched(stream)
