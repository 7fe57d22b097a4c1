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
        check_input_file(path, f"input file {raw}")
        checked[name] = path
    return checked


# Filesystems whose files are the kernel's live views: the size they report (0 in /proc, 4096
# in /sys) is not their content, and the node sends exactly the size it saw.
_PSEUDO_FILESYSTEMS = frozenset({
    "proc", "sysfs", "debugfs", "tracefs", "securityfs", "configfs", "cgroup", "cgroup2",
    "efivarfs", "pstore", "bpf", "fusectl", "binfmt_misc",
})
_NOT_REGULAR = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
)


def _filesystem_type(info: os.stat_result) -> str | None:
    """The type of the filesystem holding a file (Linux's mount table), None if unknown."""
    device = f"{os.major(info.st_dev)}:{os.minor(info.st_dev)}"
    try:
        table = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return None
    for line in table.splitlines():
        fields, sep, rest = line.partition(" - ")
        if sep and fields.split()[2:3] == [device] and rest.split():
            return rest.split()[0]
    return None


def _has_content(path: Path) -> bool:
    """Whether a file that reports 0 bytes holds some: non-blocking, as a file that only a
    writer ends (/proc/kmsg) would hang a plain read. Unreadable counts as content: its size
    cannot be trusted either way."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return True
    try:
        return os.read(fd, 1) != b""
    except OSError:
        return True
    finally:
        os.close(fd)


def check_input_file(path: Path, label: str) -> None:
    """Refuse (InputFileError, starting with `label`) a file the node cannot send as an input:
    missing, not a regular file, unreadable by this user, or one whose size is not its content
    (the node sends exactly the size it sees)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise InputFileError(f"{label}: no such file") from None
    except OSError as exc:
        raise InputFileError(f"{label}: cannot look at it ({exc.strerror})") from exc
    if stat.S_ISDIR(info.st_mode):
        raise InputFileError(f"{label} is a directory: give a file (repeat --file for several)")
    for is_kind, kind in _NOT_REGULAR:
        if is_kind(info.st_mode):
            raise InputFileError(f"{label} is {kind}, not a regular file: the node sends a "
                                 "file by its size; copy the data into a file first")
    if not os.access(path, os.R_OK):
        raise InputFileError(f"{label}: cannot read it (permission denied for this user)")
    copy = f"copy it into a regular file first (cat {path} > {path.name})"
    filesystem = _filesystem_type(info)
    if filesystem is not None and filesystem in _PSEUDO_FILESYSTEMS:
        raise InputFileError(f"{label} is on {filesystem}, whose files do not report the size "
                             f"of what they hold; {copy}")
    if info.st_size == 0 and _has_content(path):
        raise InputFileError(f"{label} reports 0 bytes but holds data; {copy}")
