"""One node per home: an exclusive `flock` on `<home>/node.lock`, taken before anything else
touches the home (keys, database, crash clean-up, sockets).

The kernel drops the lock when the process ends, however it ends, so a crashed node never
leaves a stale lock behind; the file is never removed (removing it would let a third process
lock a new inode while the second still holds the old one). It holds the holder's PID, so a
refused node can say which process to stop.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from lilypad_p2p.errors import LilypadError

LOCK_FILE = "node.lock"
# The holder writes its PID right after locking; a refused node waits this long to read it.
PID_READ_WAIT_S = 1.0
PID_READ_INTERVAL_S = 0.05


class HomeError(LilypadError):
    """The home directory cannot be used: not a directory, or another node holds it."""


class HomeLocked(HomeError):
    """Another node process holds this home."""


class HomeLock:
    """Held from `acquire` until `release` (or the process's end)."""

    def __init__(self, home: Path, fd: int) -> None:
        self.home = home
        self._fd = fd

    @classmethod
    def acquire(cls, home: Path) -> HomeLock:
        """Lock `home` (created 0700 if missing) for this process, or refuse at once.

        Raises:
            HomeLocked: another node runs with this home (the message names its PID).
            HomeError: `home` is not a directory, or cannot be created.
        """
        if home.exists() and not home.is_dir():
            raise HomeError(f"--home {home} is a file, not a directory: pass a directory")
        try:
            home.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(home / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise HomeError(f"cannot use --home {home}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder_pid(fd)
            os.close(fd)
            holder = f"PID {pid}" if pid else "another process"
            raise HomeLocked(
                f"another node ({holder}) is running with home {home}: stop it first, "
                "or pass another --home"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(home, fd)

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _holder_pid(fd: int) -> int | None:
    """The PID the holder wrote. Until it writes, the file still names the previous holder,
    which has exited (the kernel released its lock): a PID of no live process is read again."""
    deadline = time.monotonic() + PID_READ_WAIT_S
    while True:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        if text.isdigit() and process_is_alive(int(text)):
            return int(text)
        if time.monotonic() > deadline:
            return None
        time.sleep(PID_READ_INTERVAL_S)


def process_is_alive(pid: int) -> bool:
    """Whether a process with this PID exists (ours or another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
