"""Sealed chunk streams: round trip, and every way an attacker can bend a stream is caught."""

import hashlib
import os

import pytest
from nacl.public import PrivateKey

from lilypad_p2p.exec import UnsealFailed
from lilypad_p2p.exec._chunks import (
    CHUNK_OVERHEAD_BYTES,
    MAX_CHUNK_BYTES,
    PREAMBLE_BYTES,
    ChunkOpener,
    ChunkSealer,
)

RECIPIENT = PrivateKey.generate()
CONTEXT = b"inputs:" + bytes(32)


def sealed_stream(parts, context=CONTEXT):
    sealer = ChunkSealer(RECIPIENT.public_key, context)
    chunks = [sealer.seal(p) for p in parts[:-1]] + [sealer.finish(parts[-1])]
    return sealer.preamble, chunks


def open_all(preamble, chunks, key=RECIPIENT, context=CONTEXT):
    opener = ChunkOpener(key, preamble, context)
    out = [opener.open(c) for c in chunks]
    opener.check_complete()
    return out


def test_a_multi_chunk_stream_round_trips_and_hashes_as_it_passes():
    parts = [os.urandom(MAX_CHUNK_BYTES), os.urandom(1000), b""]
    preamble, chunks = sealed_stream(parts)
    assert len(preamble) == PREAMBLE_BYTES
    assert all(len(c) <= MAX_CHUNK_BYTES + CHUNK_OVERHEAD_BYTES for c in chunks)
    digest = hashlib.sha256()
    for plaintext in open_all(preamble, chunks):
        digest.update(plaintext)
    assert digest.digest() == hashlib.sha256(b"".join(parts)).digest()


def test_a_flipped_bit_anywhere_fails():
    preamble, chunks = sealed_stream([b"a" * 100, b"b" * 100, b"c"])
    for index in range(len(chunks)):
        bent = bytearray(chunks[index])
        bent[len(bent) // 2] ^= 1
        with pytest.raises(UnsealFailed):
            open_all(preamble, [*chunks[:index], bytes(bent), *chunks[index + 1:]])


def test_reordered_repeated_or_dropped_chunks_fail():
    preamble, chunks = sealed_stream([b"one", b"two", b"three", b"end"])
    for bent in (
        [chunks[1], chunks[0], *chunks[2:]],
        [chunks[0], chunks[0], *chunks[1:]],
        [chunks[0], *chunks[2:]],
    ):
        with pytest.raises(UnsealFailed):
            open_all(preamble, bent)


def test_a_stream_cut_before_its_final_chunk_is_truncated():
    preamble, chunks = sealed_stream([b"one", b"two", b"end"])
    with pytest.raises(UnsealFailed, match="truncated"):
        open_all(preamble, chunks[:-1])


def test_nothing_may_follow_the_final_chunk():
    preamble, chunks = sealed_stream([b"one", b"end"])
    _, other = sealed_stream([b"x", b"y"])
    opener = ChunkOpener(RECIPIENT, preamble, CONTEXT)
    for chunk in chunks:
        opener.open(chunk)
    with pytest.raises(UnsealFailed, match="after the stream's final"):
        opener.open(other[0])


def test_another_recipient_context_or_stream_cannot_open_it():
    preamble, chunks = sealed_stream([b"secret", b"end"])
    with pytest.raises(UnsealFailed):
        open_all(preamble, chunks, key=PrivateKey.generate())
    with pytest.raises(UnsealFailed):
        open_all(preamble, chunks, context=b"inputs:" + bytes(31) + b"\x01")
    other_preamble, _ = sealed_stream([b"secret", b"end"])
    with pytest.raises(UnsealFailed):
        open_all(other_preamble, chunks)


def test_oversized_chunks_and_bad_preambles_are_refused_before_decrypting():
    preamble, _ = sealed_stream([b"x"])
    opener = ChunkOpener(RECIPIENT, preamble, CONTEXT)
    with pytest.raises(UnsealFailed, match="over the chunk size"):
        opener.open(bytes(MAX_CHUNK_BYTES + CHUNK_OVERHEAD_BYTES + 1))
    with pytest.raises(UnsealFailed, match="preamble"):
        ChunkOpener(RECIPIENT, preamble[:-1], CONTEXT)
    sealer = ChunkSealer(RECIPIENT.public_key, CONTEXT)
    with pytest.raises(ValueError):
        sealer.seal(bytes(MAX_CHUNK_BYTES + 1))
    sealer.finish()
    with pytest.raises(ValueError):
        sealer.seal(b"late")
