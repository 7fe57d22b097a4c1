"""Lever 13 (`net/_yamux.py`): Yamux window credit in half-window batches, pinned against the
installed py-libp2p."""

import inspect
import struct

import pytest
from libp2p.stream_muxer.yamux import yamux as library
from libp2p.stream_muxer.yamux.yamux import Yamux, YamuxStream

from lilypad_p2p.net._host import DEFAULT_MUXERS, Muxer, build_host
from lilypad_p2p.net._yamux import BatchedCreditYamuxStream, TunedYamux

SMALL_READ = 1024


class _Conn:
    """What a YamuxStream uses of its connection while reading: buffers, RTT, frame writes."""

    def __init__(self) -> None:
        self.stream_buffers: dict[int, bytearray] = {1: bytearray()}
        self.frames: list[bytes] = []

    def rtt(self) -> float:
        return 0.0

    async def _write_frame(self, data: bytes) -> None:
        self.frames.append(data)


async def _read_in_small_pieces(stream: YamuxStream, conn: _Conn, total: int) -> list[int]:
    """Deliver and read `total` bytes 1 KiB at a time; the window increments sent back."""
    for _ in range(total // SMALL_READ):
        stream.recv_window -= SMALL_READ  # what the frame loop does when DATA arrives
        await stream._auto_tune_and_send_window_update(bytes_read=SMALL_READ)
    increments = []
    for frame in conn.frames:
        _, kind, _, _, length = struct.unpack(library.YAMUX_HEADER_FORMAT, frame)
        assert kind == library.TYPE_WINDOW_UPDATE
        increments.append(length)
    return increments


def test_library_hooks_we_rely_on_are_unchanged():
    assert "__slots__" not in vars(YamuxStream)  # the in-place class swap needs no layout
    signature = inspect.signature(YamuxStream._auto_tune_and_send_window_update)
    assert list(signature.parameters) == ["self", "bytes_read"]
    for name in ("_grow_threshold", "_grow_to_delta", "_apply_autotune_epoch",
                 "send_window_update"):
        assert callable(getattr(YamuxStream, name))
    read_source = inspect.getsource(YamuxStream.read)
    assert read_source.count("_auto_tune_and_send_window_update") == 2
    assert library.DEFAULT_WINDOW_SIZE == 256 * 1024


async def test_library_credits_the_window_after_every_small_read():
    """Why the lever exists: stock Yamux sends a WINDOW_UPDATE frame per 1 KiB read."""
    conn = _Conn()
    stream = YamuxStream(1, conn, is_initiator=True)  # type: ignore[arg-type]
    increments = await _read_in_small_pieces(stream, conn, 64 * SMALL_READ)
    assert len(increments) >= 60


async def test_batched_stream_credits_once_half_the_window_is_read():
    conn = _Conn()
    stream = YamuxStream(1, conn, is_initiator=True)  # type: ignore[arg-type]
    stream.__class__ = BatchedCreditYamuxStream
    half = library.DEFAULT_WINDOW_SIZE // 2
    assert await _read_in_small_pieces(stream, conn, half - SMALL_READ) == []
    increments = await _read_in_small_pieces(stream, conn, SMALL_READ)
    # The whole consumed half comes back at once (plus any auto-tuned growth), and the
    # sender's window is whole again.
    assert len(increments) == 1 and increments[0] >= half
    assert stream.recv_window >= library.DEFAULT_WINDOW_SIZE


@pytest.mark.parametrize("opener", ["open_stream", "accept_stream"])
def test_tuned_yamux_hands_out_batched_streams_from_both_doors(opener):
    source = inspect.getsource(getattr(TunedYamux, opener))
    assert "_batched(" in source
    assert getattr(Yamux, opener) is not getattr(TunedYamux, opener)


def test_hosts_offer_yamux_first_and_still_accept_mplex():
    from libp2p.crypto.secp256k1 import create_new_key_pair

    assert DEFAULT_MUXERS == (Muxer.YAMUX, Muxer.MPLEX)
    host = build_host(create_new_key_pair(), [], DEFAULT_MUXERS, target_connections=8)
    upgrader = host.get_network().upgrader  # type: ignore[attr-defined]
    offered = list(upgrader.muxer_multistream.transports.items())
    assert [protocol for protocol, _ in offered] == ["/yamux/1.0.0", "/mplex/6.7.0"]
    assert offered[0][1] is TunedYamux
