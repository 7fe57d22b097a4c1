"""Deterministic tar archives: the canonical output tarball and its result CID.

Same files, same bytes: entries sorted by path, mtime 0, uid/gid 0, empty owner names, modes
normalised (directories 0755, files 0644 or 0755 when any execute bit was set), PAX format, no
compression (gzip headers carry a timestamp).
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path
from typing import Any, BinaryIO

from multiformats import CID, multihash

from lilypad_p2p.exec._errors import OutputRejected

_READ_CHUNK = 1024 * 1024


def fixed_tarinfo(
    name: str, kind: bytes, mode: int, size: int = 0, linkname: str = ""
) -> tarfile.TarInfo:
    """A TarInfo whose metadata depends only on name, kind, mode, size and link target."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.linkname = linkname
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def result_cid(tarball: bytes) -> str:
    """CIDv1 (base32, raw codec, sha2-256) of an output tarball: the job's result hash."""
    return str(CID("base32", 1, "raw", multihash.digest(tarball, "sha2-256")))


def cid_of_digest(digest: bytes) -> str:
    """`result_cid` of a tarball whose sha2-256 digest is `digest`."""
    return str(CID("base32", 1, "raw", multihash.wrap(digest, "sha2-256")))


def tar_directory(root: Path, *, max_bytes: int) -> bytes:
    """The canonical tarball of everything under `root`, in memory (see `write_tar`)."""
    buffer = io.BytesIO()
    write_tar(root, buffer, max_bytes=max_bytes)
    return buffer.getvalue()


class _HashingFile(io.RawIOBase):
    """A write-only file that hashes and counts what passes through to `out`."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:  # tarfile asks where it is
        return self.size

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.digest.update(view)
        self.size += len(view)
        self._out.write(view)
        return len(view)


def write_tarball(root: Path, output: Path, max_bytes: int) -> tuple[bytes, int]:
    """Write the canonical tarball of `root` to the new file `output` (0600), one file piece at
    a time; returns its sha2-256 digest and size."""
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            hashing = _HashingFile(out)
            write_tar(root, hashing, max_bytes=max_bytes)  # type: ignore[arg-type]
    except BaseException:
        output.unlink(missing_ok=True)
        raise
    return hashing.digest.digest(), hashing.size


def write_tar(root: Path, out: BinaryIO, *, max_bytes: int) -> None:
    """Write the canonical tarball of everything under `root` (not following symlinks).

    Raises:
        OutputRejected: the regular files total more than `max_bytes`, or an entry is neither a
            regular file, a directory nor a symlink (fifos, sockets, devices).
    """
    entries: list[tuple[str, os.stat_result]] = []
    for directory, subdirs, files in os.walk(root, onerror=_unreadable, followlinks=False):
        for name in (*subdirs, *files):
            path = os.path.join(directory, name)
            entries.append((os.path.relpath(path, root), os.lstat(path)))
    entries.sort(key=lambda entry: entry[0])

    total = sum(st.st_size for _, st in entries if stat.S_ISREG(st.st_mode))
    if total > max_bytes:
        raise OutputRejected(f"outputs total {total} bytes, above the module's {max_bytes} bytes")
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, st in entries:
            if stat.S_ISDIR(st.st_mode):
                archive.addfile(fixed_tarinfo(name, tarfile.DIRTYPE, 0o755))
            elif stat.S_ISLNK(st.st_mode):
                target = os.readlink(root / name)
                archive.addfile(fixed_tarinfo(name, tarfile.SYMTYPE, 0o777, linkname=target))
            elif stat.S_ISREG(st.st_mode):
                mode = 0o755 if st.st_mode & 0o111 else 0o644
                _add_regular_file(archive, root / name, name, mode)
            else:
                raise OutputRejected(f"output {name!r} is not a regular file, directory or symlink")


def _unreadable(error: OSError) -> None:
    raise OutputRejected(f"output {error.filename!r} is not readable: {error.strerror}") from error


def _add_regular_file(archive: tarfile.TarFile, path: Path, name: str, mode: int) -> None:
    # O_NOFOLLOW: the job wrote this directory; never let a swapped-in symlink redirect the read.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        _unreadable(exc)
    with os.fdopen(fd, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        archive.addfile(fixed_tarinfo(name, tarfile.REGTYPE, mode, size=size), fh)
