"""Spooled input streams: files from memory and disk sealed to a spool file, unpacked piece by
piece, rebuilt as the one-piece document a mediator takes; a bent spool never unpacks."""

import hashlib
import os

import pytest
from nacl.public import PrivateKey

from lilypad_p2p.exec import MalformedInputs
from lilypad_p2p.exec._job_stream import (
    CHUNKS_OFFSET,
    inputs_commitment,
    inputs_stream_size,
    open_spool,
    spool_commitment,
    spool_info,
    unpack_spool,
    write_committed_spool,
    write_spool,
)
from lilypad_p2p.wire import CHUNK_BYTES, ChunkStreamError, sealed_size

KEY = PrivateKey.generate()
CONTEXT = b"lilypad/spool-inputs/1:bafy"


def _unpack(spool, key=KEY, context=CONTEXT):
    files = {}

    def keep(name, pieces):
        chunks = list(pieces)
        assert all(len(c) <= CHUNK_BYTES for c in chunks)
        files[name] = b"".join(chunks)

    params = unpack_spool(spool, key, context, keep)
    return files, params


def test_files_from_memory_and_disk_round_trip_through_a_0600_spool(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * CHUNK_BYTES + 11))
    files = {"a.txt": b"alpha", "d/big.bin": big, "empty": b""}
    params = {"n": 3, "text": "hi"}
    spool = tmp_path / "job.inputs"
    size = write_spool(spool, KEY.public_key, CONTEXT, files, params)
    assert size == inputs_stream_size(files, params)
    assert spool.stat().st_mode & 0o777 == 0o600
    assert spool.stat().st_size == CHUNKS_OFFSET + sealed_size(size)
    assert spool_info(spool).plaintext_bytes == size
    out, got_params = _unpack(spool)
    assert out == {"a.txt": b"alpha", "d/big.bin": big.read_bytes(), "empty": b""}
    assert got_params == params


def test_a_bent_spool_another_key_or_context_does_not_unpack(tmp_path):
    spool = tmp_path / "job.inputs"
    write_spool(spool, KEY.public_key, CONTEXT, {"x": os.urandom(2 * CHUNK_BYTES)}, {})
    with pytest.raises(ChunkStreamError):
        _unpack(spool, key=PrivateKey.generate())
    with pytest.raises(ChunkStreamError):
        _unpack(spool, context=CONTEXT + b"x")
    data = bytearray(spool.read_bytes())
    data[CHUNKS_OFFSET + CHUNK_BYTES + 40] ^= 1
    bent = tmp_path / "bent.inputs"
    bent.write_bytes(bytes(data))
    with pytest.raises(ChunkStreamError):
        _unpack(bent)
    cut = tmp_path / "cut.inputs"
    cut.write_bytes(spool.read_bytes()[:-10])
    with pytest.raises(ChunkStreamError, match="cut short"):
        _unpack(cut)


def test_bad_names_and_parameters_are_refused_before_a_spool_exists(tmp_path):
    spool = tmp_path / "job.inputs"
    for files, params in (({"../x": b""}, {}), ({"a": b"", "a/b": b""}, {}),
                          ({}, {"f": 1.5})):
        with pytest.raises(MalformedInputs):
            write_spool(spool, KEY.public_key, CONTEXT, files, params)
        assert not spool.exists()


def test_a_file_that_changes_size_while_spooled_fails_and_leaves_no_spool(tmp_path, monkeypatch):
    grows = tmp_path / "grows.bin"
    grows.write_bytes(b"x" * 10)
    import lilypad_p2p.exec._job_stream as job_stream

    real = job_stream._source_size
    monkeypatch.setattr(job_stream, "_source_size",
                        lambda s: real(s) + 5 if s == grows else real(s))
    spool = tmp_path / "job.inputs"
    with pytest.raises(MalformedInputs):
        write_spool(spool, KEY.public_key, CONTEXT, {"g": grows}, {})
    assert not spool.exists()


def test_the_commitment_is_sha256_of_the_nonce_and_the_plaintext_stream(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(CHUNK_BYTES + 3))
    files, params = {"a.txt": b"alpha", "big.bin": big}, {"n": 3}
    nonce = os.urandom(32)
    committed = inputs_commitment(nonce, files, params)
    spool = tmp_path / "job.inputs"
    write_committed_spool(spool, KEY.public_key, CONTEXT, files, params, nonce, committed)
    # From the spec (WIRE.md §5.2): sha256(nonce || the plaintext stream the spool holds).
    plaintext = b"".join(open_spool(spool, KEY, CONTEXT))
    assert committed == hashlib.sha256(nonce + plaintext).digest()
    assert spool_commitment(spool, KEY, CONTEXT, nonce) == committed
    assert inputs_commitment(os.urandom(32), files, params) != committed
    assert inputs_commitment(nonce, files, {"n": 4}) != committed


def test_a_file_rewritten_after_its_commitment_fails_and_leaves_no_spool(tmp_path):
    data = tmp_path / "data.bin"
    data.write_bytes(b"first")
    nonce = os.urandom(32)
    committed = inputs_commitment(nonce, {"d": data}, {})
    data.write_bytes(b"other")  # the same size: only the commitment tells
    spool = tmp_path / "job.inputs"
    with pytest.raises(MalformedInputs, match="changed while it was being read"):
        write_committed_spool(spool, KEY.public_key, CONTEXT, {"d": data}, {}, nonce, committed)
    assert not spool.exists()
