"""The layers between Yamux and the socket, made cheaper once a connection is muxed.

`ReadAheadTCPStream`: Noise reads each frame as a 2-byte length, then the frame, so every frame
cost two receives and two passes through trio's scheduler; the TCP stream now receives up to
`READ_AHEAD_BYTES` at once and serves later reads from what is left. It writes straight into
the socket when no write is waiting (trio's send passes through the scheduler even when the
kernel takes everything; a direct receive measured no better). Its locks are `EagerLock`s.

py-libp2p 0.8.1 reads each Noise frame of an established connection through eight layers, each
an `await` or a call: the secure session, the Noise reader (which formats two debug strings
whatever the log level), the packet reader, its length reader, `read_exactly` twice, the raw
connection twice and the TCP stream twice; then the Noise connection's checks, the cipher state
and the cipher. Writes pass through five. Every gossip copy a node receives or forwards is a
frame, so this is paid several times per delivery.

`LeanNoiseTransport` takes a frame that the TCP stream's read-ahead (`ReadAheadTCPStream`)
already holds whole straight from that buffer and decrypts it with the connection's cipher
state; anything else (a frame still arriving, end of stream, a prefixed frame) goes the
library's way, so every error is the library's. Writes encrypt with the cipher state and hand
one length-prefixed frame to the raw connection, which keeps its error mapping. The cipher
state is what counts nonces, refuses a depleted one and rekeys, so none of that changes.
`LeanSecureSession` keeps the plaintext left over from a frame in a `bytearray` instead of a
`BytesIO` and its watermarks. Figures: benchmarks/RESULTS.md ("Gossip at 20 offers/s").
"""

from __future__ import annotations

import os
from typing import Any

from cryptography.exceptions import InvalidTag
from libp2p.abc import ISecureConn
from libp2p.io.exceptions import ConnectionClosedError
from libp2p.io.trio import TrioTCPStream
from libp2p.network.connection.raw_connection import RawConnection
from libp2p.security.noise.io import (
    MAX_PLAINTEXT_LENGTH,
    SIZE_NOISE_MESSAGE_LEN,
    NoisePacketReadWriter,
    NoiseTransportReadWriter,
)
from libp2p.security.secure_session import SecureSession
from noise.exceptions import NoiseInvalidMessage

from lilypad_p2p.net._eager_lock import make_eager

# Bytes the TCP stream under Yamux asks of its socket per receive.
READ_AHEAD_BYTES = 64 * 1024
NOISE_LENGTH_BYTES = SIZE_NOISE_MESSAGE_LEN


def adopt_lean_layers(secured_conn: ISecureConn) -> ReadAheadTCPStream | None:
    """Give a newly muxed connection's layers their lean classes, where they are the ones
    py-libp2p 0.8.1 builds for TCP with Noise: the secure session, its Noise reader/writer, the
    raw connection and the TCP stream. Returns the TCP stream, or None where the path differs
    (then nothing is changed)."""
    layers: list[Any] = [secured_conn]
    for name in ("conn", "read_writer", "read_write_closer", "stream"):
        layers.append(getattr(layers[-1], name, None))
    session, transport, packets, raw, tcp = layers
    if not (
        isinstance(session, SecureSession)
        and isinstance(transport, NoiseTransportReadWriter)
        and isinstance(packets, NoisePacketReadWriter)  # frames with a 2-byte length
        and isinstance(raw, RawConnection)
        and isinstance(tcp, TrioTCPStream)
    ):
        return None
    make_eager(tcp, "read_lock")
    make_eager(tcp, "write_lock")
    ReadAheadTCPStream.adopt(tcp)
    assert isinstance(tcp, ReadAheadTCPStream)
    LeanNoiseTransport.adopt(transport, raw, tcp)
    LeanSecureSession.adopt(session)
    return tcp


class ReadAheadTCPStream(TrioTCPStream):
    """A TCP stream that receives up to `READ_AHEAD_BYTES` at once, serves later reads from what
    is left, and writes straight into the socket when it can (see the module notes)."""

    _read_ahead: bytearray

    @classmethod
    def adopt(cls, stream: TrioTCPStream) -> None:
        """Make the library-built `stream` read ahead from now on (it has read nothing yet
        that it kept: Noise's handshake reads exact frames)."""
        stream.__class__ = cls
        assert isinstance(stream, cls)
        stream._read_ahead = bytearray()

    async def read(self, n: int | None = None) -> bytes:
        buffered = self._read_ahead
        if n == 0:
            return b""
        if not buffered:
            data = await super().read(max(n or 0, READ_AHEAD_BYTES))
            if n is None or len(data) <= n:
                return data
            buffered += memoryview(data)[n:]
            return data[:n]
        take = len(buffered) if n is None else min(n, len(buffered))
        data = bytes(buffered[:take])
        del buffered[:take]
        return data

    async def write(self, data: bytes) -> None:
        # Straight into the kernel's send buffer when no write is under way: it nearly always
        # takes a whole frame at once, and trio's send passes through the scheduler first even
        # then. What it does not take, or any error, goes the library's way (which waits for
        # room, or raises the library's error). Nothing awaits before that, so no other
        # writer can come between.
        socket = self.stream.socket
        if data and not self.write_lock.locked() and not socket.did_shutdown_SHUT_WR:
            try:
                sent = os.write(socket.fileno(), data)
            except OSError:
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        await super().write(data)


class LeanNoiseTransport(NoiseTransportReadWriter):
    """The Noise reader/writer of an established connection over a `ReadAheadTCPStream`."""

    _raw: RawConnection
    _tcp: ReadAheadTCPStream

    @classmethod
    def adopt(
        cls, transport: NoiseTransportReadWriter, raw: RawConnection, tcp: ReadAheadTCPStream
    ) -> None:
        """Make the library-built `transport` read and write frames in one step from now on."""
        transport.__class__ = cls
        assert isinstance(transport, cls)
        transport._raw = raw
        transport._tcp = tcp

    async def read_msg(self, prefix_encoded: bool = False) -> bytes:
        if not prefix_encoded:
            buffered = self._tcp._read_ahead
            if not buffered:
                # Through the raw connection, which turns socket errors into the library's.
                buffered += await self._raw.read(READ_AHEAD_BYTES)
            if len(buffered) >= NOISE_LENGTH_BYTES:
                end = NOISE_LENGTH_BYTES + int.from_bytes(buffered[:NOISE_LENGTH_BYTES], "big")
                if len(buffered) >= end:
                    frame = bytes(buffered[NOISE_LENGTH_BYTES:end])
                    del buffered[:end]
                    return self._decrypt(frame)
        return await super().read_msg(prefix_encoded)

    async def write_msg(self, msg: bytes, prefix_encoded: bool = False) -> None:
        if prefix_encoded or type(msg) is not bytes or len(msg) > MAX_PLAINTEXT_LENGTH:
            await super().write_msg(msg, prefix_encoded)
            return
        cipher_state = self.noise_state.noise_protocol.cipher_state_encrypt
        ciphertext: bytes = cipher_state.encrypt_with_ad(None, msg)
        await self._raw.write(len(ciphertext).to_bytes(NOISE_LENGTH_BYTES, "big") + ciphertext)

    def _decrypt(self, frame: bytes) -> bytes:
        cipher_state = self.noise_state.noise_protocol.cipher_state_decrypt
        try:
            plaintext: bytes = cipher_state.decrypt_with_ad(None, frame)
        except InvalidTag:
            raise NoiseInvalidMessage("Failed authentication of message") from None
        return plaintext


class LeanSecureSession(SecureSession):
    """A secure session that keeps leftover plaintext in a `bytearray`."""

    _plaintext: bytearray

    @classmethod
    def adopt(cls, session: SecureSession) -> None:
        """Make the library-built `session` buffer this way, keeping what it holds already
        (muxer negotiation can leave the first muxer bytes in the library's buffer)."""
        held = session._drain(None)
        session.__class__ = cls
        assert isinstance(session, cls)
        session._plaintext = bytearray(held)

    async def read(self, n: int | None = None) -> bytes:
        # The library's contract: up to `n` bytes, waiting for all `n`; whatever is left when
        # the connection ends, or `ConnectionClosedError` when nothing is.
        if n == 0:
            return b""
        buffered = self._plaintext
        if n is None:
            if not buffered:
                return self._nonempty(await self.conn.read_msg())
            n = len(buffered)
        while len(buffered) < n:
            msg = await self.conn.read_msg()
            if msg == b"":
                if buffered:
                    break
                raise ConnectionClosedError("Connection closed")
            buffered += msg
        data = bytes(buffered[:n])
        del buffered[:n]
        return data

    def take_buffered(self, n: int) -> bytes | None:
        """The next `n` bytes if they are already here (no read, no wait), else None."""
        buffered = self._plaintext
        if len(buffered) < n:
            return None
        data = bytes(buffered[:n])
        del buffered[:n]
        return data

    @staticmethod
    def _nonempty(msg: bytes) -> bytes:
        if msg == b"":
            raise ConnectionClosedError("Connection closed")
        return msg
