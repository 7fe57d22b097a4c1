"""Files for tests and benchmarks."""

from __future__ import annotations

import os
from pathlib import Path


def random_file(path: Path, mib: int) -> Path:
    """Write `mib` MiB of random bytes to `path`, one MiB at a time (large job inputs)."""
    with path.open("wb") as fh:
        for _ in range(mib):
            fh.write(os.urandom(1 << 20))
    return path
