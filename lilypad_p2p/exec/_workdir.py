"""A job's private work directory: made 0700, the inputs written for the job's user only, and
wiped (decrypted inputs first) whatever the job left behind.

When the node runs as root the job runs as nobody (65534): the inputs are given to its group
read-only (files 0640, directories 0750) and `outputs` is its own; otherwise the node's own uid
owns everything (see `_executor.py`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from lilypad_p2p import wire
from lilypad_p2p.exec._errors import InputDecryptionFailed
from lilypad_p2p.exec._inputs import JobInputs, ParamValue
from lilypad_p2p.exec._job_stream import unpack_spool
from lilypad_p2p.exec._outputs_fs import unmount
from lilypad_p2p.exec._sealing import PrivateKeyLike, as_private_key

NOBODY = 65534
WORKDIR_PREFIX = "lilypad-job-"


def make_private_workdir(root: Path | None) -> Path:
    workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX, dir=root))
    os.chmod(workdir, 0o700)
    return workdir


def wipe(workdir: Path) -> None:
    """Delete the private directory; the decrypted inputs go first, whatever the job left."""
    shutil.rmtree(workdir / "inputs", ignore_errors=True)
    unmount(workdir / "outputs")
    # A job running as our own uid may have left directories without write or search permission.
    shutil.rmtree(workdir, onerror=_make_removable)


def _make_removable(function: object, path: str, error: object) -> None:
    parent = os.path.dirname(path)
    os.chmod(parent, 0o700)
    if os.path.isdir(path) and not os.path.islink(path):
        os.chmod(path, 0o700)
        shutil.rmtree(path)
    else:
        os.unlink(path)


def write_inputs(workdir: Path, inputs: JobInputs) -> str:
    """Write the inputs under `workdir/inputs`, create `workdir/outputs`; the container's user."""
    reader_gid, user = _make_job_dirs(workdir)
    for relative, content in inputs.files.items():
        _write_input_file(workdir / "inputs", relative, (content,), reader_gid)
    return user


def unpack_inputs(
    workdir: Path, spool: Path, key: PrivateKeyLike, context: bytes
) -> tuple[str, dict[str, ParamValue]]:
    """`write_inputs` from a spooled input stream; the container's user and the params."""
    reader_gid, user = _make_job_dirs(workdir)
    try:
        params = unpack_spool(
            spool, as_private_key(key), context,
            lambda name, pieces: _write_input_file(workdir / "inputs", name, pieces, reader_gid))
    except wire.ChunkStreamError as exc:
        raise InputDecryptionFailed(
            f"job inputs do not open with this node's sealing key ({exc}); no container was "
            "started") from exc
    return user, params


def _make_job_dirs(workdir: Path) -> tuple[int, str]:
    """`workdir/inputs` (readable by the job's group) and `workdir/outputs` (the job's)."""
    as_root = os.geteuid() == 0
    reader_gid = NOBODY if as_root else os.getegid()
    _make_dir(workdir / "inputs", 0o750, reader_gid)
    outputs_dir = workdir / "outputs"
    outputs_dir.mkdir(mode=0o700)
    if as_root:
        os.chown(outputs_dir, NOBODY, NOBODY)
        return reader_gid, f"{NOBODY}:{NOBODY}"
    return reader_gid, f"{os.geteuid()}:{os.getegid()}"


def _write_input_file(
    inputs_dir: Path, relative: str, pieces: Iterable[bytes], reader_gid: int
) -> None:
    path = inputs_dir / relative
    for parent in reversed(path.relative_to(inputs_dir).parents[:-1]):
        if not (inputs_dir / parent).exists():
            _make_dir(inputs_dir / parent, 0o750, reader_gid)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o640)
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fh.fileno(), 0o640)  # the umask must not hide inputs from the job's user
        os.fchown(fh.fileno(), -1, reader_gid)
        for piece in pieces:
            fh.write(piece)


def _make_dir(path: Path, mode: int, gid: int) -> None:
    path.mkdir(mode=mode)
    os.chmod(path, mode)  # mkdir's mode is filtered by the umask
    os.chown(path, -1, gid)
