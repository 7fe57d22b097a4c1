"""Mplex writes go out in 64 KiB frames (`net/_mplex_frames.py`): pinned against the library
version whose 4 KiB frames it replaces, and checked frame by frame."""

import trio
from libp2p.stream_muxer.mplex import constants
from libp2p.stream_muxer.mplex.datastructures import StreamID
from libp2p.stream_muxer.mplex.mplex_stream import MplexStream

from lilypad_p2p.net._mplex import DuplexStreamLock
from lilypad_p2p.net._mplex_frames import FRAME_BYTES, write_in_large_frames


class _Conn:
    def __init__(self):
        self.frames = []

    async def send_message(self, flag, data, stream_id):
        self.frames.append(data)


def test_the_library_still_cuts_writes_at_4_kib_and_reads_up_to_1_mib():
    # If these change, revisit the override (it may no longer be needed, or be wrong).
    assert constants.CHUNK_SIZE == 4076
    assert constants.MAX_MESSAGE_SIZE == 1 << 20
    assert FRAME_BYTES < constants.MAX_MESSAGE_SIZE
    assert hasattr(MplexStream, "_do_write")


async def test_a_write_goes_out_in_order_in_frames_of_at_most_frame_bytes():
    conn = _Conn()
    stream = MplexStream("s", StreamID(1, True), conn, trio.open_memory_channel(1)[1])
    stream.rw_lock = DuplexStreamLock()
    data = bytes(range(256)) * 5000  # 1.28 MB
    await write_in_large_frames(stream, data)
    assert b"".join(conn.frames) == data
    assert all(len(f) == FRAME_BYTES for f in conn.frames[:-1])
    assert len(conn.frames) == -(-len(data) // FRAME_BYTES)
