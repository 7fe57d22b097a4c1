"""Sealed chunk streams: bytes of any size encrypted to a recipient in bounded, ordered chunks.

How a job's inputs and outputs travel (docs/WIRE.md §6). Sans-I/O: the caller moves the bytes.

    preamble = SealedBox(recipient).encrypt(key) || secretstream header     (104 bytes)
    chunk_i  = crypto_secretstream_xchacha20poly1305_push(state, plaintext_i, ad=context)

`key` is a fresh random 32-byte secretstream key per stream. A stream of `n` plaintext bytes is
cut at every `CHUNK_BYTES`: `n // CHUNK_BYTES` full chunks tagged MESSAGE, then one last chunk
of the `n % CHUNK_BYTES` rest (possibly empty) tagged FINAL. Its ciphertext is therefore
exactly `sealed_size(n)` bytes and chunk `i` exactly `chunk_size(n, i)`: a receiver that knows
`n` (the stream's header says it) reads exact lengths, needs no per-chunk framing, and checks
`n` against its limits before reading anything.

libsodium's secretstream authenticates each chunk and its position, so a chunk altered, dropped,
repeated or moved fails to open, and a stream cut short is caught because its final tag never
arrives. `context` (the deal ID and the direction, or mediation) is authenticated with every chunk:
a stream made for another deal or purpose does not open. Either side holds one chunk at a time;
hashes of the plaintext are computed by the caller as the chunks pass.
"""

from __future__ import annotations

from nacl import bindings
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox
from nacl.utils import random

from lilypad_p2p.wire._errors import WireError

CHUNK_BYTES = 1024 * 1024
_KEY_BYTES = bindings.crypto_secretstream_xchacha20poly1305_KEYBYTES
_HEADER_BYTES = bindings.crypto_secretstream_xchacha20poly1305_HEADERBYTES
CHUNK_OVERHEAD_BYTES = bindings.crypto_secretstream_xchacha20poly1305_ABYTES
PREAMBLE_BYTES = _KEY_BYTES + 48 + _HEADER_BYTES  # a SealedBox adds 48 bytes
_TAG_MESSAGE = bindings.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
_TAG_FINAL = bindings.crypto_secretstream_xchacha20poly1305_TAG_FINAL

INPUTS_CONTEXT = b"lilypad/job-inputs/1:"
OUTPUT_CONTEXT = b"lilypad/job-output/1:"
# A job's inputs re-sealed to one mediator of its deal (`/lilypad/mediation/3`).
MEDIATION_CONTEXT = b"lilypad/mediation-inputs/1:"


class ChunkStreamError(WireError):
    """A sealed chunk stream does not open: altered, reordered, truncated, or not ours."""


def chunk_count(plaintext_bytes: int) -> int:
    """How many chunks a stream of `plaintext_bytes` has (the last one may be empty)."""
    if plaintext_bytes < 0:
        raise ValueError("a stream's size is not negative")
    return plaintext_bytes // CHUNK_BYTES + 1


def sealed_size(plaintext_bytes: int) -> int:
    """The stream's ciphertext bytes after its preamble."""
    return plaintext_bytes + chunk_count(plaintext_bytes) * CHUNK_OVERHEAD_BYTES


def chunk_size(plaintext_bytes: int, index: int) -> int:
    """The ciphertext bytes of chunk `index` of a stream of `plaintext_bytes`."""
    count = chunk_count(plaintext_bytes)
    if not 0 <= index < count:
        raise IndexError(f"chunk {index} of a {count}-chunk stream")
    plain = CHUNK_BYTES if index < count - 1 else plaintext_bytes % CHUNK_BYTES
    return plain + CHUNK_OVERHEAD_BYTES


def _public(key: PublicKey | bytes) -> PublicKey:
    return key if isinstance(key, PublicKey) else PublicKey(bytes(key))


def _private(key: PrivateKey | bytes) -> PrivateKey:
    return key if isinstance(key, PrivateKey) else PrivateKey(bytes(key))


class ChunkSealer:
    """Encrypts one stream of exactly `plaintext_bytes` to `recipient`.

    `preamble` first, then `seal(piece)` for each piece of the plaintext in order (any sizes;
    an empty stream takes one `seal(b"")`, an empty piece after the end is nothing); it
    returns the chunks completed by that piece (full ones, and the final one once all bytes
    are in), so at most one chunk is ever pending.
    """

    def __init__(self, recipient: PublicKey | bytes, context: bytes, plaintext_bytes: int) -> None:
        key = random(_KEY_BYTES)
        self._state = bindings.crypto_secretstream_xchacha20poly1305_state()
        header = bindings.crypto_secretstream_xchacha20poly1305_init_push(self._state, key)
        self.preamble = SealedBox(_public(recipient)).encrypt(key) + header
        self._context = bytes(context)
        self._left = plaintext_bytes
        self._chunks_left = chunk_count(plaintext_bytes)
        self._pending = bytearray()

    @property
    def finished(self) -> bool:
        return self._chunks_left == 0

    def seal(self, piece: bytes) -> list[bytes]:
        if len(piece) > self._left:
            raise ValueError("more plaintext than the stream declared")
        self._left -= len(piece)
        self._pending += piece
        out = []
        while len(self._pending) >= CHUNK_BYTES and self._chunks_left > 1:
            out.append(self._push(bytes(self._pending[:CHUNK_BYTES]), _TAG_MESSAGE))
            del self._pending[:CHUNK_BYTES]
        if self._left == 0 and self._chunks_left == 1:
            out.append(self._push(bytes(self._pending), _TAG_FINAL))
            self._pending.clear()
        return out

    def _push(self, plaintext: bytes, tag: int) -> bytes:
        self._chunks_left -= 1
        return bindings.crypto_secretstream_xchacha20poly1305_push(
            self._state, plaintext, self._context, tag
        )


class ChunkOpener:
    """Decrypts one stream of `plaintext_bytes` sealed to `private_key`, chunk by chunk.

    Every failure is `ChunkStreamError`.
    """

    def __init__(
        self, private_key: PrivateKey | bytes, preamble: bytes, context: bytes,
        plaintext_bytes: int,
    ) -> None:
        if len(preamble) != PREAMBLE_BYTES:
            raise ChunkStreamError(f"a chunk stream's preamble is {PREAMBLE_BYTES} bytes")
        sealed_key, header = preamble[:-_HEADER_BYTES], preamble[-_HEADER_BYTES:]
        try:
            key = SealedBox(_private(private_key)).decrypt(bytes(sealed_key))
        except CryptoError as exc:
            raise ChunkStreamError("the chunk stream's key is not sealed to this node") from exc
        self._state = bindings.crypto_secretstream_xchacha20poly1305_state()
        bindings.crypto_secretstream_xchacha20poly1305_init_pull(self._state, bytes(header), key)
        self._context = bytes(context)
        self._size = plaintext_bytes
        self._index = 0
        self.finished = False

    def next_size(self) -> int:
        """The ciphertext bytes of the next chunk (0 once the stream is complete)."""
        return 0 if self.finished else chunk_size(self._size, self._index)

    def open(self, chunk: bytes) -> bytes:
        """The plaintext of the next chunk, in order.

        Raises:
            ChunkStreamError: the chunk is not the expected size, is altered, out of order,
                from another stream or context, or its tag disagrees with its position.
        """
        if self.finished:
            raise ChunkStreamError("a chunk after the stream's final chunk")
        if len(chunk) != self.next_size():
            raise ChunkStreamError(f"chunk {self._index} is {len(chunk)} bytes, "
                                   f"expected {self.next_size()}")
        try:
            plaintext, tag = bindings.crypto_secretstream_xchacha20poly1305_pull(
                self._state, bytes(chunk), self._context
            )
        except CryptoError as exc:
            raise ChunkStreamError(
                "a chunk does not open: altered, dropped, reordered, or from another stream"
            ) from exc
        last = self._index == chunk_count(self._size) - 1
        if (tag == _TAG_FINAL) != last:
            raise ChunkStreamError("the stream's final tag is not on its last chunk (truncated)")
        self._index += 1
        self.finished = last
        return plaintext
