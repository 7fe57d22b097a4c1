"""Module images built offline (tests, the simnet's user module): busybox plus a file of our
own, so each is new to the Docker engine (a pull really downloads it) and its size is chosen by
the caller."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from lilypad_p2p.exec import RECIPES_DIR, ImageArchive, build_image_archive


def module_image(work: Path, name: str, *, padding_bytes: int = 0, seed: str = "") -> ImageArchive:
    """The busybox recipe plus `/etc/lilypad-test` (`seed`) and `padding_bytes` of random data
    in `/padding` (random, so compression cannot shrink it)."""
    recipe = work / "recipes" / name
    shutil.copytree(RECIPES_DIR / "busybox", recipe, dirs_exist_ok=True)
    (recipe / "rootfs" / "etc" / "lilypad-test").write_text(f"{name} {seed}\n")
    if padding_bytes:
        (recipe / "rootfs" / "padding").write_bytes(os.urandom(padding_bytes))
    return build_image_archive(name, work / "recipes")
