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
import platform
import subprocess
import tarfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from lilypad_p2p.exec._errors import ImageMissing
from lilypad_p2p.exec._tarball import fixed_tarinfo

RECIPES_DIR = Path(__file__).parent / "images"
IMAGE_REPOSITORY = "lilypad-p2p"
BUSYBOX_LIST_TIMEOUT_S = 10.0
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
    layer = _layer_tarball(recipe_dir, Path(spec["busybox"]), tuple(spec["directories"]))
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


def _layer_tarball(recipe_dir: Path, busybox: Path, directories: tuple[str, ...]) -> bytes:
    if not busybox.is_file():
        raise ImageMissing(
            f"{busybox} not found: install Debian's static busybox (apt-get install busybox-static)"
        )
    applets = subprocess.run(
        [str(busybox), "--list"],
        check=True,
        capture_output=True,
        text=True,
        timeout=BUSYBOX_LIST_TIMEOUT_S,
    ).stdout.split()
    entries: list[tuple[str, tarfile.TarInfo, bytes | None]] = []
    for directory in directories:
        mode = _WORLD_WRITABLE_STICKY if directory == "tmp" else 0o755
        entries.append((directory, fixed_tarinfo(directory, tarfile.DIRTYPE, mode), None))
    binary = busybox.read_bytes()
    entries.append(
        ("bin/busybox", fixed_tarinfo("bin/busybox", tarfile.REGTYPE, 0o755, len(binary)), binary)
    )
    for applet in sorted(set(applets) - {"busybox"}):
        name = f"bin/{applet}"
        entries.append(
            (name, fixed_tarinfo(name, tarfile.SYMTYPE, 0o777, linkname="busybox"), None)
        )
    rootfs = recipe_dir / "rootfs"
    for path in sorted(rootfs.rglob("*")):
        name = path.relative_to(rootfs).as_posix()
        if path.is_dir():
            if name in directories:
                continue
            entries.append((name, fixed_tarinfo(name, tarfile.DIRTYPE, 0o755), None))
        else:
            content = path.read_bytes()
            entries.append(
                (name, fixed_tarinfo(name, tarfile.REGTYPE, 0o644, len(content)), content)
            )
    names = [name for name, _, _ in entries]
    if len(names) != len(set(names)):
        raise ImageMissing(f"recipe {recipe_dir.name}: rootfs/ collides with generated entries")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for _, info, content in sorted(entries, key=lambda entry: entry[0]):
            archive.addfile(info, io.BytesIO(content) if content is not None else None)
    return buffer.getvalue()


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
