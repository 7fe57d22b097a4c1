"""A job's input files as the CLI names them: paths on this machine, read by the node.

`lilypad-p2p run --file` hands the node absolute paths instead of the files' bytes in a JSON
line (whose 4 MiB cap made larger files fail without a word). The control socket is 0600, so
the caller is this node's own user: the node reads a file only if that user may (`os.access`),
and checks every size before reading anything, so a job over the limit is refused up front,
before any offer, deal or deposit is touched.

The limit: one job's sealed inputs travel in one `/lilypad/job/1` frame (that protocol's
request cap), which also carries the deal; `JOB_FRAME_RESERVE` is left for that.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from lilypad_p2p.errors import LilypadError
from lilypad_p2p.exec import MalformedInputs
from lilypad_p2p.exec._inputs import check_input_path
from lilypad_p2p.net import JOB_PROTOCOL, PROTOCOLS

# The deal, the output recipient, msgpack headers and the seal's 48 bytes, with room to spare.
JOB_FRAME_RESERVE = 1024 * 1024
MAX_JOB_INPUT_BYTES = PROTOCOLS[JOB_PROTOCOL].max_request_bytes - JOB_FRAME_RESERVE


class InputFileError(LilypadError):
    """An input file cannot be used: missing, not a regular file, unreadable, or too large."""


def check_inputs_fit(encoded_bytes: int, files_bytes: int) -> None:
    """Refuse inputs whose encoding is more than one job can carry.

    Raises:
        InputFileError: naming the total and the limit.
    """
    if encoded_bytes > MAX_JOB_INPUT_BYTES:
        raise InputFileError(
            f"the job's inputs take {encoded_bytes} bytes ({files_bytes} bytes of files); a job "
            f"carries at most {MAX_JOB_INPUT_BYTES} bytes of inputs: split the work into "
            "several jobs or pass smaller files"
        )


def read_input_files(paths: Mapping[str, str]) -> dict[str, bytes]:
    """The contents of `{name in /inputs: absolute path}`, after checking every file first.

    Blocking: call through `trio.to_thread`.

    Raises:
        InputFileError: a name is not a valid input path, a path is not absolute, missing, not
            a regular file or not readable by this user, or the files total more than a job
            carries (checked on their sizes, before reading).
    """
    checked: dict[str, Path] = {}
    total = 0
    for name, raw in sorted(paths.items()):
        try:
            check_input_path(name)
        except MalformedInputs as exc:
            raise InputFileError(f"input file name: {exc}") from exc
        path = Path(raw)
        if not path.is_absolute():
            raise InputFileError(f"input file {raw!r}: give an absolute path")
        try:
            info = path.stat()
        except FileNotFoundError:
            raise InputFileError(f"input file {raw}: no such file") from None
        except OSError as exc:
            raise InputFileError(f"input file {raw}: {exc.strerror}") from exc
        if not stat.S_ISREG(info.st_mode):
            raise InputFileError(f"input file {raw}: not a regular file (a directory?)")
        if not os.access(path, os.R_OK):
            raise InputFileError(f"input file {raw}: not readable by this node's user")
        total += info.st_size
        checked[name] = path
    if total > MAX_JOB_INPUT_BYTES:
        check_inputs_fit(total, total)
    contents: dict[str, bytes] = {}
    for name, path in checked.items():
        try:
            contents[name] = path.read_bytes()
        except OSError as exc:
            raise InputFileError(f"input file {path}: {exc.strerror}") from exc
    return contents
