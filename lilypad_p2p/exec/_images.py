"""Offline, deterministic module images built from the recipes under `exec/images/<recipe>/`.

A recipe becomes a `docker save`-format archive (manifest.json + image config + one layer) built
entirely here: a layer tarball with fixed metadata and an image config with a fixed creation
date. The image ID is the sha256 of that config, so it is known before Docker sees the image, the
same on every machine with the same busybox binary, and verified after `docker load`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import posixpath
import subprocess
import tarfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lilypad_p2p.exec._errors import ImageMissing
from lilypad_p2p.exec._tarball import fixed_tarinfo

RECIPES_DIR = Path(__file__).parent / "images"
IMAGE_REPOSITORY = "lilypad-p2p"
BUSYBOX_LIST_TIMEOUT_S = 10.0
LDD_TIMEOUT_S = 10.0
EPOCH = "1970-01-01T00:00:00Z"
_WORLD_WRITABLE_STICKY = 0o1777
_ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}


@dataclass(frozen=True, slots=True)
class ImageArchive:
    """A recipe's image: its content-addressed ID and the archive `docker load` accepts."""

    recipe: str
    image_id: str
    archive: bytes

    @property
    def tag(self) -> str:
        return f"{IMAGE_REPOSITORY}/{self.recipe}:latest"


def recipe_names(recipes_dir: Path = RECIPES_DIR) -> tuple[str, ...]:
    """Names of the recipes shipped under `recipes_dir`."""
    return tuple(sorted(p.parent.name for p in recipes_dir.glob("*/recipe.toml")))


def recipe_is_optional(recipe: str, recipes_dir: Path = RECIPES_DIR) -> bool:
    """Whether a host lacking what `recipe` copies may skip it instead of failing the build."""
    spec = tomllib.loads((recipes_dir / recipe / "recipe.toml").read_text())
    return bool(spec.get("optional", False))


def build_image_archive(recipe: str, recipes_dir: Path = RECIPES_DIR) -> ImageArchive:
    """Build recipe `recipe` into a deterministic image archive (no Docker involved).

    Raises:
        ImageMissing: the recipe or the busybox binary it names does not exist.
    """
    recipe_dir = recipes_dir / recipe
    try:
        spec = tomllib.loads((recipe_dir / "recipe.toml").read_text())
    except FileNotFoundError as exc:
        raise ImageMissing(f"no image recipe {recipe!r} under {recipes_dir}") from exc
    layer = _layer_tarball(recipe_dir, spec)
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = _canonical_json(
        {
            "architecture": _ARCHITECTURES.get(platform.machine(), platform.machine()),
            "os": "linux",
            "created": EPOCH,
            "config": {
                "Env": ["PATH=/bin"],
                "User": "65534:65534",
                "WorkingDir": "/tmp",
                "Labels": {"org.lilypad-p2p.recipe": recipe},
            },
            "history": [{"created": EPOCH, "created_by": f"lilypad-p2p modules build ({recipe})"}],
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    )
    config_hex = hashlib.sha256(config).hexdigest()
    layer_path = f"{diff_id.removeprefix('sha256:')}/layer.tar"
    manifest = _canonical_json(
        [
            {
                "Config": f"{config_hex}.json",
                "RepoTags": [f"{IMAGE_REPOSITORY}/{recipe}:latest"],
                "Layers": [layer_path],
            }
        ]
    )
    archive = _tar_of(
        [
            (f"{config_hex}.json", config),
            (layer_path.split("/")[0], None),
            (layer_path, layer),
            ("manifest.json", manifest),
        ]
    )
    return ImageArchive(recipe=recipe, image_id=f"sha256:{config_hex}", archive=archive)


def _layer_tarball(recipe_dir: Path, spec: dict[str, Any]) -> bytes:
    rootfs = _Rootfs()
    for directory in spec.get("directories", ()):
        rootfs.add_directory(directory, _WORLD_WRITABLE_STICKY if directory == "tmp" else 0o755)
    if "busybox" in spec:
        rootfs.add_busybox(Path(spec["busybox"]))
    linked: list[Path] = []
    for executable in spec.get("executables", ()):
        linked.append(rootfs.add_host_file(Path(executable)))
    for tree in spec.get("trees", ()):
        linked.extend(
            rootfs.add_host_tree(Path(tree["source"]), frozenset(tree.get("exclude", ())))
        )
    for library in _shared_libraries(linked):
        rootfs.add_host_file(library)
    for name, target in sorted(spec.get("links", {}).items()):
        rootfs.add_symlink(name, target)
    files = recipe_dir / "rootfs"
    for path in sorted(files.rglob("*")):
        if path.is_file():
            rootfs.add_file(path.relative_to(files).as_posix(), path.read_bytes(), 0o644)
    return rootfs.tarball()


class _Rootfs:
    """A root filesystem being assembled in memory, written out with fixed metadata."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[tarfile.TarInfo, bytes | None]] = {}

    def add_directory(self, name: str, mode: int = 0o755) -> None:
        parent = posixpath.dirname(name)
        if parent and parent not in self._entries:
            self.add_directory(parent)
        self._entries.setdefault(name, (fixed_tarinfo(name, tarfile.DIRTYPE, mode), None))

    def add_file(self, name: str, content: bytes, mode: int) -> None:
        self._claim(name)
        info = fixed_tarinfo(name, tarfile.REGTYPE, mode, len(content))
        self._entries[name] = (info, content)

    def add_symlink(self, name: str, target: str) -> None:
        self._claim(name)
        self._entries[name] = (fixed_tarinfo(name, tarfile.SYMTYPE, 0o777, linkname=target), None)

    def add_host_file(self, path: Path) -> Path:
        """Copy a host file (its content, symlinks resolved) to the same path in the image."""
        name = path.as_posix().lstrip("/")
        if name not in self._entries:
            real = path.resolve(strict=True)
            mode = 0o755 if os.access(real, os.X_OK) else 0o644
            self.add_file(name, real.read_bytes(), mode)
        return path

    def add_host_tree(self, source: Path, exclude: frozenset[str]) -> list[Path]:
        """Copy a host directory tree minus entries named in `exclude`; its shared objects."""
        if not source.is_dir():
            raise ImageMissing(f"{source} not found: the recipe copies it from the host")
        shared_objects = []
        for directory, subdirs, files in os.walk(source):
            subdirs[:] = sorted(d for d in subdirs if d not in exclude)
            self.add_directory(Path(directory).as_posix().lstrip("/"))
            for name in sorted(set(files) - exclude):
                path = Path(directory) / name
                if path.is_symlink() or not path.is_file():
                    continue
                self.add_host_file(path)
                if name.endswith(".so"):
                    shared_objects.append(path)
        return shared_objects

    def add_busybox(self, busybox: Path) -> None:
        if not busybox.is_file():
            raise ImageMissing(
                f"{busybox} not found: install Debian's static busybox "
                "(apt-get install busybox-static)"
            )
        applets = subprocess.run(
            [str(busybox), "--list"],
            check=True,
            capture_output=True,
            text=True,
            timeout=BUSYBOX_LIST_TIMEOUT_S,
        ).stdout.split()
        self.add_file("bin/busybox", busybox.read_bytes(), 0o755)
        for applet in sorted(set(applets) - {"busybox"}):
            self.add_symlink(f"bin/{applet}", "busybox")

    def tarball(self) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
            for name in sorted(self._entries):
                info, content = self._entries[name]
                archive.addfile(info, io.BytesIO(content) if content is not None else None)
        return buffer.getvalue()

    def _claim(self, name: str) -> None:
        if name in self._entries:
            raise ImageMissing(f"image recipe puts two entries at /{name}")
        parent = posixpath.dirname(name)
        if parent:
            self.add_directory(parent)


def _shared_libraries(binaries: list[Path]) -> list[Path]:
    """Every shared library (and the dynamic loader) the binaries load, as `ldd` resolves them."""
    if not binaries:
        return []
    libraries: set[Path] = set()
    for binary in binaries:
        listing = subprocess.run(
            ["ldd", str(binary)], capture_output=True, text=True, timeout=LDD_TIMEOUT_S
        )
        for line in listing.stdout.splitlines():
            words = line.replace("=>", " ").split()
            paths = [word for word in words if word.startswith("/")]
            if paths:
                libraries.add(Path(paths[0]))
    return sorted(libraries)


def _tar_of(members: list[tuple[str, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, content in members:
            if content is None:
                archive.addfile(fixed_tarinfo(name, tarfile.DIRTYPE, 0o755))
            else:
                info = fixed_tarinfo(name, tarfile.REGTYPE, 0o644, len(content))
                archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _canonical_json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
