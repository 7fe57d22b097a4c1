"""The address a Unix socket is bound or reached at, whatever the depth of its path.

A socket address holds at most 107 bytes of path (`sun_path`), and a node's home may be deeper
than that. Linux resolves `/proc/self/fd/N/NAME`, N a descriptor of the socket's directory, as
it resolves the path itself: binding there makes the socket file in that directory and
connecting there reaches it, so a deep path goes through its directory's descriptor.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# sun_path holds 108 bytes with the terminating NUL.
MAX_SOCKET_PATH_BYTES = 107


@contextmanager
def socket_address(path: Path) -> Iterator[str]:
    """`path` as a name `bind` and `connect` take, valid while the context lasts.

    Raises:
        OSError: a deep path's directory cannot be opened (missing: FileNotFoundError).
    """
    if len(os.fsencode(path)) <= MAX_SOCKET_PATH_BYTES:
        yield str(path)
        return
    directory = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{directory}/{path.name}"
    finally:
        os.close(directory)
