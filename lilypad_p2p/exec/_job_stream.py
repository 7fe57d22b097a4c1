"""A job's inputs as a stream, spooled to disk sealed: built, moved and unpacked in chunks.

The plaintext of a job's input stream (docs/WIRE.md §6):

    u32 big-endian header length || header || the files' bytes, one after another

    header = canonical msgpack {"files": [[path, size], ...] (sorted by path),
                                "params": {name: int | str | bool},
                                "type": "job-inputs-stream", "v": 1}

It travels and rests as a sealed chunk stream (`wire/_chunks.py`). A spool file is

    u64 big-endian plaintext size || preamble || the chunks

written 0600 under the node's home: the client's copy is sealed to itself, the provider's is
the stream exactly as the job creator sealed it to the provider (a mediator's, as the disputing
party re-sealed it to the mediator). Nothing here holds more than one chunk (1 MiB) of a file,
plaintext or sealed.

Blocking file I/O throughout: call through `trio.to_thread`.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import msgpack
from nacl.public import PrivateKey, PublicKey

from lilypad_p2p import wire
from lilypad_p2p.exec._errors import MalformedInputs
from lilypad_p2p.exec._inputs import (
    MAX_INPUT_FILES,
    JobInputs,
    ParamValue,
    check_input_path,
    check_param_value,
)

STREAM_TYPE = "job-inputs-stream"
STREAM_VERSION = 1
# The header names every file and parameter; it is small (1000 paths of 255 characters).
MAX_HEADER_BYTES = 4 * 1024 * 1024
_SIZE = struct.Struct(">Q")
_HEADER_LENGTH = struct.Struct(">I")

# An input file's bytes: in memory (from a JSON request) or a path on this machine.
FileSource = bytes | Path


@dataclass(frozen=True, slots=True)
class SpoolInfo:
    """A spool file's plaintext size and preamble (its chunks follow at `PREAMBLE_OFFSET`)."""

    plaintext_bytes: int
    preamble: bytes


PREAMBLE_OFFSET = _SIZE.size
CHUNKS_OFFSET = _SIZE.size + wire.PREAMBLE_BYTES


def _header(files: Sequence[tuple[str, int]], params: Mapping[str, ParamValue]) -> bytes:
    body = msgpack.packb({"files": [list(f) for f in files], "params": dict(sorted(params.items())),
                          "type": STREAM_TYPE, "v": STREAM_VERSION}, use_bin_type=True)
    return _HEADER_LENGTH.pack(len(body)) + body


def _source_size(source: FileSource) -> int:
    return len(source) if isinstance(source, bytes) else source.stat().st_size


def _source_pieces(source: FileSource, size: int) -> Iterator[bytes]:
    if isinstance(source, bytes):
        for start in range(0, len(source), wire.CHUNK_BYTES):
            yield source[start:start + wire.CHUNK_BYTES]
        return
    left = size
    with source.open("rb") as fh:
        while left:
            piece = fh.read(min(wire.CHUNK_BYTES, left))
            if not piece:
                raise MalformedInputs(f"input file {source} shrank while it was being read")
            left -= len(piece)
            yield piece


def inputs_stream_size(files: Mapping[str, FileSource], params: Mapping[str, ParamValue]) -> int:
    """The plaintext bytes of the input stream these files and parameters make."""
    sizes = [(name, _source_size(files[name])) for name in sorted(files)]
    return len(_header(sizes, params)) + sum(size for _, size in sizes)


def _layout(
    files: Mapping[str, FileSource], params: Mapping[str, ParamValue]
) -> tuple[list[tuple[str, int]], bytes]:
    """The stream's files with their sizes, in order, and its header, once the paths and
    parameters are checked (clashing paths, bad names or values raise `MalformedInputs`)."""
    JobInputs(files={name: b"" for name in files}, params=params)
    sizes = [(name, _source_size(files[name])) for name in sorted(files)]
    return sizes, _header(sizes, params)


def inputs_commitment(
    nonce: bytes, files: Mapping[str, FileSource], params: Mapping[str, ParamValue]
) -> bytes:
    """The job offer's `inputs_commitment` to the input stream of `files` and `params`.

    Raises:
        MalformedInputs: a bad path, parameter or file count.
        OSError: a file cannot be read.
    """
    sizes, header = _layout(files, params)
    commitment = wire.InputsCommitment(nonce)
    for piece in _pieces(header, files, sizes):
        commitment.update(piece)
    return commitment.digest()


def spool_commitment(spool: Path, key: PrivateKey | bytes, context: bytes, nonce: bytes) -> bytes:
    """The `inputs_commitment` the plaintext of a spool (opened with `key`) makes with `nonce`.

    Raises:
        ChunkStreamError: the spool does not open.
    """
    commitment = wire.InputsCommitment(nonce)
    for piece in open_spool(spool, key, context):
        commitment.update(piece)
    return commitment.digest()


def write_spool(
    spool: Path, recipient: PublicKey | bytes, context: bytes,
    files: Mapping[str, FileSource], params: Mapping[str, ParamValue],
    commitment: wire.InputsCommitment | None = None,
) -> int:
    """Seal the input stream of `files` and `params` into the new file `spool` (0600), feeding
    its plaintext to `commitment` if given.

    The sizes are taken first; a file that then changes size fails. Returns the plaintext size.

    Raises:
        MalformedInputs: a bad path, parameter or file count.
        OSError: a file cannot be read, or the spool cannot be written.
    """
    sizes, header = _layout(files, params)
    total = len(header) + sum(size for _, size in sizes)
    sealer = wire.ChunkSealer(recipient, context, total)
    fd = os.open(spool, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(_SIZE.pack(total) + sealer.preamble)
            for piece in _pieces(header, files, sizes):
                if commitment is not None:
                    commitment.update(piece)
                for chunk in sealer.seal(piece):
                    out.write(chunk)
            if not sealer.finished:
                raise MalformedInputs("an input file changed size while it was being read")
    except BaseException:
        spool.unlink(missing_ok=True)
        raise
    return total


def write_committed_spool(
    spool: Path, recipient: PublicKey | bytes, context: bytes,
    files: Mapping[str, FileSource], params: Mapping[str, ParamValue], nonce: bytes,
    committed: bytes,
) -> None:
    """`write_spool`, checking that what it sealed is what `committed` (`inputs_commitment`
    with `nonce`) was taken of: a file rewritten in between would have the job refused.

    Raises:
        MalformedInputs: as `write_spool`, or a file changed since the commitment.
        OSError: as `write_spool`.
    """
    commitment = wire.InputsCommitment(nonce)
    write_spool(spool, recipient, context, files, params, commitment)
    if commitment.digest() != committed:
        spool.unlink(missing_ok=True)
        raise MalformedInputs("an input file changed while it was being read; submit the job "
                              "again once the file is complete")


def _pieces(
    header: bytes, files: Mapping[str, FileSource], sizes: Sequence[tuple[str, int]]
) -> Iterator[bytes]:
    yield header
    for name, size in sizes:
        yield from _source_pieces(files[name], size)
    yield b""  # an empty stream still needs its final chunk


def spool_info(spool: Path) -> SpoolInfo:
    with spool.open("rb") as fh:
        head = fh.read(CHUNKS_OFFSET)
    if len(head) != CHUNKS_OFFSET:
        raise wire.ChunkStreamError(f"spool {spool.name} is cut short")
    return SpoolInfo(_SIZE.unpack(head[:_SIZE.size])[0], head[_SIZE.size:])


def spool_chunks(spool: Path, info: SpoolInfo) -> Iterator[bytes]:
    """The sealed chunks of a spool file, one at a time, as stored."""
    with spool.open("rb") as fh:
        fh.seek(CHUNKS_OFFSET)
        for index in range(wire.chunk_count(info.plaintext_bytes)):
            size = wire.chunk_size(info.plaintext_bytes, index)
            chunk = fh.read(size)
            if len(chunk) != size:
                raise wire.ChunkStreamError(f"spool {spool.name} is cut short")
            yield chunk


def open_spool(spool: Path, key: PrivateKey | bytes, context: bytes) -> Iterator[bytes]:
    """The plaintext pieces of a spool sealed to `key` under `context` (one chunk each).

    Raises:
        ChunkStreamError: the spool does not open (altered, cut short, another key/context).
    """
    info = spool_info(spool)
    opener = wire.ChunkOpener(key, info.preamble, context, info.plaintext_bytes)
    for chunk in spool_chunks(spool, info):
        yield opener.open(chunk)
    if not opener.finished:
        raise wire.ChunkStreamError(f"spool {spool.name} ends before its final chunk")


class _Plain:
    """Reads exact byte counts from a sequence of plaintext pieces, one piece buffered."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces
        self._buffer = b""

    def read(self, count: int) -> Iterator[bytes]:
        while count:
            if not self._buffer:
                self._buffer = next(self._pieces, b"")
                if not self._buffer:
                    raise MalformedInputs("the input stream ends inside a file")
            piece, self._buffer = self._buffer[:count], self._buffer[count:]
            count -= len(piece)
            yield piece

    def read_all(self, count: int) -> bytes:
        return b"".join(self.read(count))

    def check_end(self) -> None:
        if self._buffer or any(self._pieces):
            raise MalformedInputs("the input stream has bytes after its last file")


def _read_header(plain: _Plain) -> tuple[list[tuple[str, int]], dict[str, ParamValue]]:
    (length,) = _HEADER_LENGTH.unpack(plain.read_all(_HEADER_LENGTH.size))
    if length > MAX_HEADER_BYTES:
        raise MalformedInputs(f"an input stream header of {length} bytes")
    raw = plain.read_all(length)
    try:
        document: Any = msgpack.unpackb(raw, raw=False, strict_map_key=True, use_list=True)
    except (ValueError, msgpack.UnpackException, TypeError) as exc:
        raise MalformedInputs(f"the input stream header is not msgpack: {exc}") from exc
    if (not isinstance(document, dict) or set(document) != {"files", "params", "type", "v"}
            or document["type"] != STREAM_TYPE or document["v"] != STREAM_VERSION
            or not isinstance(document["files"], list) or not isinstance(document["params"], dict)):
        raise MalformedInputs(f"not a {STREAM_TYPE} v{STREAM_VERSION} header")
    if len(document["files"]) > MAX_INPUT_FILES:
        raise MalformedInputs(f"{len(document['files'])} input files; at most {MAX_INPUT_FILES}")
    files: list[tuple[str, int]] = []
    for entry in document["files"]:
        if (not isinstance(entry, list) or len(entry) != 2 or type(entry[1]) is not int
                or entry[1] < 0):
            raise MalformedInputs("an input stream file entry is not [path, size]")
        files.append((check_input_path(entry[0]), entry[1]))
    params = {name: check_param_value(name, value) for name, value in document["params"].items()}
    if [name for name, _ in files] != sorted({name for name, _ in files}):
        raise MalformedInputs("input stream files must be sorted and unique")
    JobInputs(files={name: b"" for name, _ in files}, params=params)  # directory clashes
    if _header(files, params)[_HEADER_LENGTH.size:] != raw:
        raise MalformedInputs("the input stream header is not canonically encoded")
    return files, params


def unpack_spool(
    spool: Path, key: PrivateKey | bytes, context: bytes,
    write_file: Any,
) -> dict[str, ParamValue]:
    """Open a spool and hand each file to `write_file(path, pieces)`; returns the params.

    Raises:
        ChunkStreamError: the spool does not open.
        MalformedInputs: the plaintext is not a valid input stream.
    """
    plain = _Plain(open_spool(spool, key, context))
    files, params = _read_header(plain)
    for name, size in files:
        write_file(name, plain.read(size))
    plain.check_end()
    return params


def receive_into(out: BinaryIO, plaintext_bytes: int, preamble: bytes) -> None:
    """Start a spool file whose chunks the caller then appends as they arrive."""
    out.write(_SIZE.pack(plaintext_bytes) + preamble)
