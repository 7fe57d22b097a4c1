"""Reading a known number of bytes from a libp2p stream (frames and sealed chunks)."""

from __future__ import annotations

from libp2p.abc import INetStream

from lilypad_p2p import wire

# Bytes asked of the stream per read while filling a frame or a chunk.
_READ_PIECE = 1 << 16


async def read_exactly(stream: INetStream, count: int, what: str = "a frame") -> bytes:
    """Exactly `count` bytes; a stream that ends first is malformed (`what` names the unit)."""
    data = bytearray()
    while len(data) < count:
        chunk = await stream.read(min(count - len(data), _READ_PIECE))
        if not chunk:
            raise wire.MalformedMessage(f"stream ended inside {what}")
        data += chunk
    return bytes(data)
