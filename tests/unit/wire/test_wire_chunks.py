"""Sealed chunk streams: round trip, exact sizes, and every way an attacker can bend a stream
is caught (altered, reordered, repeated, dropped, truncated, another key/context/stream)."""

import hashlib
import os
import tracemalloc

import pytest
from nacl.public import PrivateKey

from lilypad_p2p.wire import (
    CHUNK_BYTES,
    PREAMBLE_BYTES,
    ChunkOpener,
    ChunkSealer,
    ChunkStreamError,
    chunk_count,
    chunk_size,
    sealed_size,
)

RECIPIENT = PrivateKey.generate()
CONTEXT = b"lilypad/job-inputs/1:" + bytes(32)


def sealed(data: bytes, context: bytes = CONTEXT, pieces: int = 3) -> tuple[bytes, list[bytes]]:
    sealer = ChunkSealer(RECIPIENT.public_key, context, len(data))
    step = max(1, len(data) // pieces)
    chunks = []
    for start in range(0, len(data), step):
        chunks += sealer.seal(data[start:start + step])
    if not sealer.finished:
        chunks += sealer.seal(b"")
    return sealer.preamble, chunks


def opened(preamble, chunks, size, key=RECIPIENT, context=CONTEXT) -> bytes:
    opener = ChunkOpener(key, preamble, context, size)
    out = b"".join(opener.open(c) for c in chunks)
    if not opener.finished:
        raise ChunkStreamError("truncated")
    return out


@pytest.mark.parametrize("size", [0, 1, CHUNK_BYTES - 1, CHUNK_BYTES, 2 * CHUNK_BYTES + 5])
def test_streams_of_any_size_round_trip_at_their_exact_sizes(size):
    data = os.urandom(size)
    preamble, chunks = sealed(data)
    assert len(preamble) == PREAMBLE_BYTES
    assert len(chunks) == chunk_count(size)
    assert [len(c) for c in chunks] == [chunk_size(size, i) for i in range(len(chunks))]
    assert sum(map(len, chunks)) == sealed_size(size)
    assert opened(preamble, chunks, size) == data


def test_a_flipped_bit_in_any_chunk_fails():
    data = os.urandom(2 * CHUNK_BYTES + 100)
    preamble, chunks = sealed(data)
    for index in range(len(chunks)):
        bent = bytearray(chunks[index])
        bent[len(bent) // 2] ^= 1
        with pytest.raises(ChunkStreamError):
            opened(preamble, [*chunks[:index], bytes(bent), *chunks[index + 1:]], len(data))


def test_reordered_repeated_or_dropped_chunks_fail():
    data = os.urandom(3 * CHUNK_BYTES)
    preamble, chunks = sealed(data)
    for bent in (
        [chunks[1], chunks[0], *chunks[2:]],
        [chunks[0], chunks[0], *chunks[1:]],
        [chunks[0], *chunks[2:]],
    ):
        with pytest.raises(ChunkStreamError):
            opened(preamble, bent, len(data))


def test_a_stream_cut_short_or_with_a_false_size_fails():
    data = os.urandom(2 * CHUNK_BYTES + 7)
    preamble, chunks = sealed(data)
    with pytest.raises(ChunkStreamError, match="truncated"):
        opened(preamble, chunks[:-1], len(data))
    # A receiver told the stream is shorter finds the final tag missing where it expects it.
    with pytest.raises(ChunkStreamError):
        opened(preamble, chunks[:1], CHUNK_BYTES - 17)
    # Told it is longer, the last chunk carries the final tag too early.
    with pytest.raises(ChunkStreamError):
        opened(preamble, chunks, len(data) + CHUNK_BYTES)


def test_nothing_may_follow_the_final_chunk():
    preamble, chunks = sealed(b"one")
    opener = ChunkOpener(RECIPIENT, preamble, CONTEXT, 3)
    opener.open(chunks[0])
    with pytest.raises(ChunkStreamError, match="after the stream's final"):
        opener.open(chunks[0])


def test_another_recipient_context_or_stream_cannot_open_it():
    data = b"secret" * 100
    preamble, chunks = sealed(data)
    with pytest.raises(ChunkStreamError, match="not sealed to this node"):
        opened(preamble, chunks, len(data), key=PrivateKey.generate())
    with pytest.raises(ChunkStreamError):
        opened(preamble, chunks, len(data), context=b"lilypad/job-output/1:" + bytes(32))
    other_preamble, _ = sealed(data)
    with pytest.raises(ChunkStreamError):
        opened(other_preamble, chunks, len(data))


def test_bad_preambles_and_misfit_chunks_are_refused_before_decrypting():
    preamble, chunks = sealed(b"x")
    with pytest.raises(ChunkStreamError, match="preamble"):
        ChunkOpener(RECIPIENT, preamble[:-1], CONTEXT, 1)
    opener = ChunkOpener(RECIPIENT, preamble, CONTEXT, 1)
    with pytest.raises(ChunkStreamError, match="expected"):
        opener.open(chunks[0] + b"\0")
    sealer = ChunkSealer(RECIPIENT.public_key, CONTEXT, 2)
    with pytest.raises(ValueError):
        sealer.seal(b"abc")  # more than declared
    assert len(sealer.seal(b"ab")) == 1 and sealer.finished
    assert sealer.seal(b"") == []
    with pytest.raises(ValueError):
        sealer.seal(b"c")  # after the end


def test_memory_stays_bounded_by_a_chunk_while_64_mib_pass():
    size = 64 * CHUNK_BYTES
    piece = os.urandom(256 * 1024)
    sealer = ChunkSealer(RECIPIENT.public_key, CONTEXT, size)
    opener = ChunkOpener(RECIPIENT, sealer.preamble, CONTEXT, size)
    digest = hashlib.sha256()
    tracemalloc.start()
    try:
        for _ in range(size // len(piece)):
            for chunk in sealer.seal(piece):
                digest.update(opener.open(chunk))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert opener.finished
    assert digest.digest() == hashlib.sha256(piece * (size // len(piece))).digest()
    assert peak < 6 * CHUNK_BYTES, f"peak {peak} bytes while 64 MiB passed"
