"""Sealed chunk streams: bytes of any size encrypted to a recipient in bounded, ordered chunks.

The building block for streaming inputs and outputs (not yet used by the job protocol, which
still carries one SealedBox per direction). Sans-I/O: the caller moves the bytes.

    preamble = SealedBox(recipient).encrypt(key) || secretstream header     (104 bytes)
    chunk_i  = crypto_secretstream_xchacha20poly1305_push(state, plaintext_i, ad=context)

`key` is a fresh random 32-byte secretstream key per stream; the last chunk carries TAG_FINAL.
libsodium's secretstream authenticates each chunk and its position, so a chunk altered,
dropped, repeated or moved fails to open, and a stream cut short is caught because its final
tag never arrives. `context` (e.g. the deal ID and direction) is authenticated with every chunk:
a stream made for another deal does not open. Each side holds one chunk (at most
`MAX_CHUNK_BYTES` of plaintext) at a time; hashes of the plaintext are computed by the caller
as the chunks pass.
"""

from __future__ import annotations

from nacl import bindings
from nacl.exceptions import CryptoError
from nacl.public import SealedBox
from nacl.utils import random

from lilypad_p2p.exec._errors import UnsealFailed
from lilypad_p2p.exec._sealing import (
    PrivateKeyLike,
    PublicKeyLike,
    as_private_key,
    as_public_key,
)

MAX_CHUNK_BYTES = 1024 * 1024
_KEY_BYTES = bindings.crypto_secretstream_xchacha20poly1305_KEYBYTES
_HEADER_BYTES = bindings.crypto_secretstream_xchacha20poly1305_HEADERBYTES
CHUNK_OVERHEAD_BYTES = bindings.crypto_secretstream_xchacha20poly1305_ABYTES
PREAMBLE_BYTES = _KEY_BYTES + 48 + _HEADER_BYTES  # a SealedBox adds 48 bytes
_TAG_MESSAGE = bindings.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
_TAG_FINAL = bindings.crypto_secretstream_xchacha20poly1305_TAG_FINAL


class ChunkSealer:
    """Encrypts one stream to `recipient`: `preamble`, then `seal(chunk)`, then `finish()`."""

    def __init__(self, recipient: PublicKeyLike, context: bytes) -> None:
        key = random(_KEY_BYTES)
        self._state = bindings.crypto_secretstream_xchacha20poly1305_state()
        header = bindings.crypto_secretstream_xchacha20poly1305_init_push(self._state, key)
        self.preamble = SealedBox(as_public_key(recipient)).encrypt(key) + header
        self._context = bytes(context)
        self._finished = False

    def seal(self, plaintext: bytes) -> bytes:
        """One chunk of at most MAX_CHUNK_BYTES, encrypted."""
        return self._push(plaintext, _TAG_MESSAGE)

    def finish(self, plaintext: bytes = b"") -> bytes:
        """The last chunk (may be empty); nothing may follow it."""
        chunk = self._push(plaintext, _TAG_FINAL)
        self._finished = True
        return chunk

    def _push(self, plaintext: bytes, tag: int) -> bytes:
        if self._finished:
            raise ValueError("the stream is finished")
        if len(plaintext) > MAX_CHUNK_BYTES:
            raise ValueError(f"a chunk holds at most {MAX_CHUNK_BYTES} bytes")
        return bindings.crypto_secretstream_xchacha20poly1305_push(
            self._state, bytes(plaintext), self._context, tag
        )


class ChunkOpener:
    """Decrypts one stream sealed to `private_key`; every failure is `UnsealFailed`."""

    def __init__(self, private_key: PrivateKeyLike, preamble: bytes, context: bytes) -> None:
        if len(preamble) != PREAMBLE_BYTES:
            raise UnsealFailed(f"a chunk stream's preamble is {PREAMBLE_BYTES} bytes")
        sealed_key, header = preamble[:-_HEADER_BYTES], preamble[-_HEADER_BYTES:]
        try:
            key = SealedBox(as_private_key(private_key)).decrypt(bytes(sealed_key))
        except CryptoError as exc:
            raise UnsealFailed("the chunk stream's key is not sealed to this node's key") from exc
        self._state = bindings.crypto_secretstream_xchacha20poly1305_state()
        bindings.crypto_secretstream_xchacha20poly1305_init_pull(self._state, bytes(header), key)
        self._context = bytes(context)
        self.finished = False

    def open(self, chunk: bytes) -> bytes:
        """The plaintext of the next chunk, in order.

        Raises:
            UnsealFailed: the chunk is oversized, altered, out of order, from another stream or
                context, or follows the final chunk.
        """
        if self.finished:
            raise UnsealFailed("a chunk after the stream's final chunk")
        if len(chunk) > MAX_CHUNK_BYTES + CHUNK_OVERHEAD_BYTES:
            raise UnsealFailed(f"a chunk of {len(chunk)} bytes is over the chunk size")
        try:
            plaintext, tag = bindings.crypto_secretstream_xchacha20poly1305_pull(
                self._state, bytes(chunk), self._context
            )
        except CryptoError as exc:
            raise UnsealFailed(
                "a chunk does not open: altered, dropped, reordered, or from another stream"
            ) from exc
        self.finished = tag == _TAG_FINAL
        return plaintext

    def check_complete(self) -> None:
        """Call when the sender says it is done.

        Raises:
            UnsealFailed: the stream ended before its final chunk (truncated).
        """
        if not self.finished:
            raise UnsealFailed("the chunk stream ended before its final chunk (truncated)")
