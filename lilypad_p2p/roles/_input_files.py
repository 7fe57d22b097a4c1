"""A job's input files as the CLI names them: paths on this machine, read by the node.

`lilypad-p2p run --file` hands the node absolute paths instead of the files' bytes in a JSON
line (whose 4 MiB cap made larger files fail without a word). The control socket is 0600, so
the caller is this node's own user: the node reads a file only if that user may (`os.access`),
and checks every size before reading anything, so a job over the limit is refused up front,
before any offer, deal or deposit is touched.

The size limit is the node's `max_job_bytes` (config.py): inputs travel and rest as sealed chunk
streams (`exec/_job_stream.py`), so no file is ever read whole into memory.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from lilypad_p2p.errors import LilypadError
from lilypad_p2p.exec import MalformedInputs
from lilypad_p2p.exec._inputs import check_input_path


class InputFileError(LilypadError):
    """An input file cannot be used: missing, not a regular file, unreadable, or too large."""


def check_job_size(stream_bytes: int, max_job_bytes: int) -> None:
    """Refuse inputs over the node's per-job maximum, in one line that says what to do.

    Raises:
        InputFileError: naming the size and the setting.
    """
    if stream_bytes > max_job_bytes:
        raise InputFileError(
            f"the job's inputs take {stream_bytes} bytes, over this node's max_job_bytes of "
            f"{max_job_bytes}: pass smaller files, split the work into several jobs, or raise "
            "max_job_bytes in config.toml"
        )


def check_input_files(paths: Mapping[str, str]) -> dict[str, Path]:
    """`{name in /inputs: absolute path}` checked, as Paths; nothing is read.

    Blocking: call through `run_blocking`.

    Raises:
        InputFileError: a name is not a valid input path, a path is not absolute, missing, not
            a regular file or not readable by this user.
    """
    checked: dict[str, Path] = {}
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
        checked[name] = path
    return checked
