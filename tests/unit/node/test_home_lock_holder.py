"""A refused node names the process that holds the home, not the one that held it before."""

from __future__ import annotations

import fcntl
import os
import subprocess
import threading

import pytest

from lilypad_p2p.home import LOCK_FILE, HomeLock, HomeLocked

# Long enough that the refused node has read the lock file before the holder writes its PID.
HOLDER_WRITES_AFTER_S = 0.3


def test_a_refused_node_waits_for_the_new_holder_to_write_its_pid(tmp_path) -> None:
    """The lock file keeps the last holder's PID after it exits; the next holder writes its
    own right after locking. A node refused in between must not name the exited one."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    lock = tmp_path / LOCK_FILE
    lock.write_text(f"{gone.pid}\n")
    holder = os.open(lock, os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the new holder, before it writes
    writer = threading.Timer(HOLDER_WRITES_AFTER_S,
                             lambda: os.pwrite(holder, f"{os.getpid()}\n".encode(), 0))
    writer.start()
    try:
        with pytest.raises(HomeLocked, match=f"PID {os.getpid()}\\)"):
            HomeLock.acquire(tmp_path)
    finally:
        writer.join()
        os.close(holder)
