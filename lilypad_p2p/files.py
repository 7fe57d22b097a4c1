"""Reading a file nobody vouches for (a settings file, a definition a user points at): bounded,
and only a regular file, opened without blocking so that a FIFO or a device (`/dev/zero`)
cannot hang or flood the reader."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def read_bounded(path: Path, limit: int) -> bytes:
    """The bytes of the regular file at `path`.

    Raises:
        OSError: it cannot be opened, is not a regular file, or holds more than `limit` bytes.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        data = file.read(limit + 1)
    if len(data) > limit:
        raise OSError(f"{path} is larger than {limit} bytes")
    return data
