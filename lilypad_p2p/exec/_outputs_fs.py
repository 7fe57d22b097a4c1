"""A job's `/outputs`, bounded while the job runs: its own small ext4 filesystem.

Checking the outputs' size after the job exits is too late: a job declaring 64 MiB filled the
provider's disk by writing 1 GiB first. So when the node runs as root, `/outputs` is a fresh
ext4 filesystem in a sparse image file inside the job's private directory, loop-mounted
(`nosuid,nodev`) before the container starts and unmounted before the directory is wiped: the
kernel stops the job's writes with ENOSPC once the image is full, whatever the job does.

The image holds the module's `disk_bytes` plus ext4's own metadata (`_image_bytes`), so a job
may write what it declares (counted in 4 KiB blocks: a file takes at least one); the exact
limit on the files' sizes is still checked on the tarball. Measured
(ext4 without journal, lazy inode tables): mkfs + mount take about 20 ms whatever the size, the
sparse image costs only what the job writes, and writes go through the page cache (reclaimable,
not the node's RSS). A filesystem the job filled (no free block or inode left) is how the
executor tells "output over limit" from an ordinary failure.

A node that is not root cannot mount; its jobs write to a plain directory bounded only after
exit (the executor warns once at start). Blocking calls: run them through `trio.to_thread`.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import struct
import subprocess
from pathlib import Path

from lilypad_p2p.exec._errors import SandboxFailed

logger = logging.getLogger(__name__)

IMAGE_NAME = "outputs.img"
DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock"
# Measured with these mkfs options: ext4 keeps 3.6 % (64 MiB) to 2 % (4 GiB) for inode tables
# and bitmaps, 7 % of a 1 MiB image, plus 1 MiB for the inode floor below; 1/16 plus 2 MiB
# covers every size with room to spare.
_METADATA_FRACTION = 16
_METADATA_FIXED_BYTES = 2 * 1024 * 1024
# One inode per 16 KiB, but never fewer than this: a small module may still write many tiny
# files (a 1 MiB image would otherwise hold 64).
_BYTES_PER_INODE = 16384
MIN_INODES = 4096
# A filesystem with less room than this left was filled by the job (ENOSPC hit mid-write).
FULL_MARGIN_BYTES = 64 * 1024
# 4 KiB blocks whatever the size (mkfs would pick 1 KiB blocks for a small image); no journal,
# no reserve, no room to grow: a scratch disk.
_MKFS = (
    "mkfs.ext4", "-q", "-F", "-m", "0", "-b", "4096",
    "-O", "^has_journal,^resize_inode", "-E", "lazy_itable_init=1",
)
_COMMAND_TIMEOUT_S = 30.0


def can_bound_outputs() -> bool:
    """Whether this process may create and mount a bounded outputs filesystem that the Docker
    engine will see: root, mkfs.ext4, and the engine in our mount namespace. A node started
    with `ip netns exec` (the simnet's and NAT lab's namespaces) has a mount namespace of its
    own: the engine would bind the empty directory under our mount, and the job's outputs
    would land where we never read them."""
    return (
        os.geteuid() == 0
        and shutil.which("mkfs.ext4") is not None
        and engine_shares_our_mounts()
    )


def engine_shares_our_mounts(docker_host: str | None = None) -> bool:
    """Whether the local Docker engine (the process behind its Unix socket, by SO_PEERCRED)
    is in this process's mount namespace. False for a remote engine or when it cannot tell."""
    host = docker_host if docker_host is not None else os.environ.get("DOCKER_HOST", "")
    if host and not host.startswith("unix://"):
        return False
    path = host.removeprefix("unix://") or DEFAULT_DOCKER_SOCKET
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(2)
            probe.connect(path)
            credentials = probe.getsockopt(
                socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")
            )
        engine_pid = struct.unpack("3i", credentials)[0]
        ours, theirs = os.stat("/proc/self/ns/mnt"), os.stat(f"/proc/{engine_pid}/ns/mnt")
    except OSError:
        return False
    return (ours.st_dev, ours.st_ino) == (theirs.st_dev, theirs.st_ino)


def _image_bytes(limit_bytes: int) -> int:
    return limit_bytes + limit_bytes // _METADATA_FRACTION + _METADATA_FIXED_BYTES


def mount_bounded_outputs(outputs_dir: Path, limit_bytes: int) -> None:
    """Mount a fresh ext4 filesystem of room `limit_bytes` on the empty dir `outputs_dir`.

    The image file lies beside `outputs_dir`; the mount's root keeps `outputs_dir`'s owner and
    mode, and is empty (ext4's lost+found is removed: it would change the result tarball).

    Raises:
        SandboxFailed: mkfs or mount failed (the message carries their stderr).
    """
    image = outputs_dir.parent / IMAGE_NAME
    fd = os.open(image, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.ftruncate(fd, _image_bytes(limit_bytes))
    finally:
        os.close(fd)
    before = os.stat(outputs_dir)
    inodes = max(MIN_INODES, limit_bytes // _BYTES_PER_INODE)
    _run((*_MKFS, "-N", str(inodes), str(image)), "creating the job's outputs filesystem")
    _run(
        ("mount", "-t", "ext4", "-o", "loop,nosuid,nodev", str(image), str(outputs_dir)),
        "mounting the job's outputs filesystem",
    )
    (outputs_dir / "lost+found").rmdir()
    os.chown(outputs_dir, before.st_uid, before.st_gid)
    os.chmod(outputs_dir, before.st_mode & 0o7777)


def filled(outputs_dir: Path) -> bool:
    """Whether the job used up its outputs filesystem (no room or no inode left)."""
    stats = os.statvfs(outputs_dir)
    return stats.f_bavail * stats.f_frsize < FULL_MARGIN_BYTES or stats.f_favail == 0


def is_mounted(path: Path) -> bool:
    return os.path.ismount(path)


def unmount(outputs_dir: Path) -> None:
    """Unmount `outputs_dir` if it is a mount; the loop device is released with it."""
    if not is_mounted(outputs_dir):
        return
    # Lazy: a container the engine has not fully torn down must not pin the mount.
    _run(("umount", "-l", str(outputs_dir)), "unmounting the job's outputs filesystem")


def mounts_under(root: Path) -> list[Path]:
    """Every mount point below `root` (deepest first): leftovers of a killed node."""
    prefix = str(root.resolve()).rstrip("/") + "/"
    points: list[Path] = []
    with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
        for line in mountinfo:
            fields = line.split()
            point = _unescape(fields[4]) if len(fields) > 4 else ""
            if point.startswith(prefix):
                points.append(Path(point))
    return sorted(points, key=lambda p: len(p.parts), reverse=True)


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal.
    return field.encode().decode("unicode_escape") if "\\" in field else field


def _run(argv: tuple[str, ...], doing: str) -> None:
    try:
        subprocess.run(
            argv,
            check=True,
            capture_output=True,
            timeout=_COMMAND_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.CalledProcessError as exc:
        stderr = exc.stderr.decode("utf-8", "replace").strip()
        raise SandboxFailed(f"{doing}: {argv[0]} failed: {stderr or exc}") from exc
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxFailed(f"{doing}: {argv[0]} failed: {exc}") from exc
