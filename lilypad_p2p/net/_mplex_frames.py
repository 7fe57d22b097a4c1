"""Mplex writes in 64 KiB frames instead of py-libp2p's 4 KiB.

py-libp2p 0.8 cuts every Mplex write into frames of 4,076 bytes (go-mplex's *write buffer*
chunk size), and every frame costs a Noise message, a task switch through the stream's
one-deep receive queue and a lock on each side: a 1 GiB job output is 260,000 of them, and
the trio machinery around them, not the crypto, bounds a transfer (~25 MiB/s in one process,
profiled). The Mplex spec and every implementation accept frames up to 1 MiB
(go-mplex and js-libp2p `maxMsgSize`, py-libp2p `MAX_MESSAGE_SIZE`), so frames of 64 KiB
less Noise's overhead (one Noise message each) interoperate and cut the count 16-fold.
"""

from __future__ import annotations

from libp2p.stream_muxer.mplex.exceptions import MplexStreamClosed
from libp2p.stream_muxer.mplex.mplex_stream import MplexStream

# One Noise transport message carries 65,519 bytes of plaintext: the frame, its header
# (channel varint, length varint: under 16 bytes) included.
FRAME_BYTES = 65_519 - 16


async def write_in_large_frames(stream: MplexStream, data: bytes) -> None:
    """`MplexStream._do_write` with FRAME_BYTES frames (same locking, order and checks)."""
    async with stream.rw_lock.write_lock():
        if stream.event_local_closed.is_set():
            raise MplexStreamClosed(f"cannot write to closed stream: data={data!r}")
        flag = stream._get_header_flag("message")
        if not data:
            await stream.muxed_conn.send_message(flag, data, stream.stream_id)
            return
        view = memoryview(data)
        for offset in range(0, len(data), FRAME_BYTES):
            await stream.muxed_conn.send_message(
                flag, bytes(view[offset:offset + FRAME_BYTES]), stream.stream_id)


def use_large_frames(stream: MplexStream) -> None:
    async def do_write(data: bytes) -> None:
        await write_in_large_frames(stream, data)

    stream._do_write = do_write  # type: ignore[method-assign]
