"""Offline, deterministic module images built from the recipes under `exec/images/<recipe>/`.

A recipe becomes a `docker save`-format archive (manifest.json + image config + one layer) built
entirely here: a layer tarball with fixed metadata and an image config with a fixed creation
date. The image ID is the sha256 of that config, so it is known before Docker sees the image, the
same on every machine with the same busybox binary, and verified after `docker load`.

A recipe may come from someone else (a cloned repository) and is often built as root, so its
`recipe.toml` is checked key by key, every path it puts in the image stays inside the image, its
`rootfs/` is read without following a link out of it, and host files are copied only if every
user of the host may read them.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import posixpath
import reprlib
import stat
import subprocess
import tarfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lilypad_p2p.exec._errors import ImageMissing, ImageRefused
from lilypad_p2p.exec._tarball import fixed_tarinfo

RECIPES_DIR = Path(__file__).parent / "images"
IMAGE_REPOSITORY = "lilypad-p2p"
BUSYBOX_LIST_TIMEOUT_S = 10.0
LDD_TIMEOUT_S = 10.0
MAX_RECIPE_BYTES = 64 * 1024
# The image is assembled in memory: its files together may hold at most this much.
MAX_IMAGE_CONTENT_BYTES = 512 * 1024 * 1024
EPOCH = "1970-01-01T00:00:00Z"
_WORLD_WRITABLE_STICKY = 0o1777
_ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}
_RECIPE_KEYS = frozenset({"optional", "busybox", "directories", "executables", "trees", "links"})
_TREE_KEYS = frozenset({"source", "exclude"})
_NOT_PATH_PARTS = frozenset({"", ".", ".."})
_NOBODY = 65534


@dataclass(frozen=True, slots=True)
class ImageArchive:
    """A recipe's image: its content-addressed ID and the archive `docker load` accepts."""

    recipe: str
    image_id: str
    archive: bytes

    @property
    def tag(self) -> str:
        return f"{IMAGE_REPOSITORY}/{self.recipe}:latest"


@dataclass(frozen=True, slots=True)
class _Recipe:
    """A `recipe.toml` whose keys all have the types and values the README describes."""

    optional: bool
    busybox: Path | None
    directories: tuple[str, ...]
    executables: tuple[Path, ...]
    trees: tuple[tuple[Path, frozenset[str]], ...]
    links: tuple[tuple[str, str], ...]


def recipe_names(recipes_dir: Path = RECIPES_DIR) -> tuple[str, ...]:
    """Names of the recipes shipped under `recipes_dir`."""
    return tuple(sorted(p.parent.name for p in recipes_dir.glob("*/recipe.toml")))


def recipe_is_optional(recipe: str, recipes_dir: Path = RECIPES_DIR) -> bool:
    """Whether a host lacking what `recipe` copies may skip it instead of failing the build."""
    return _load_recipe(recipe, recipes_dir).optional


def build_image_archive(recipe: str, recipes_dir: Path = RECIPES_DIR) -> ImageArchive:
    """Build recipe `recipe` into a deterministic image archive (no Docker involved).

    Raises:
        ImageMissing: the recipe, or a host file it copies (busybox included), does not exist.
        ImageRefused: the recipe is malformed or unsafe: a bad key, a path leaving the image, a
            link, hard link or special file in `rootfs/`, a host file not every user may read.
    """
    spec = _load_recipe(recipe, recipes_dir)
    layer = _layer_tarball(recipes_dir / recipe, spec, recipe)
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


def _load_recipe(recipe: str, recipes_dir: Path) -> _Recipe:
    path = recipes_dir / recipe / "recipe.toml"
    where = f"{recipe}/recipe.toml"
    if not os.path.lexists(path):
        raise ImageMissing(f"no image recipe {recipe!r} under {recipes_dir}")
    data = _read_plain(path, where, max_bytes=MAX_RECIPE_BYTES)
    try:
        raw = tomllib.loads(data.decode())
    except UnicodeDecodeError as exc:
        raise ImageRefused(f"{where} is not UTF-8 text; save it as UTF-8") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ImageRefused(f"{where} is not valid TOML ({exc}); fix it") from exc
    unknown = sorted(set(raw) - _RECIPE_KEYS)
    if unknown:
        raise ImageRefused(f"{where}: unknown key(s) {unknown}; known: {sorted(_RECIPE_KEYS)}")
    optional = raw.get("optional", False)
    if not isinstance(optional, bool):
        raise _bad_key(where, "optional", "true or false", optional)
    busybox = raw.get("busybox")
    links = raw.get("links", {})
    if not isinstance(links, dict):
        raise _bad_key(where, "links", 'a table of image path = target, like "bin/sh" = "busybox"',
                       links)
    return _Recipe(
        optional=optional,
        busybox=None if busybox is None else _host_path(busybox, where, "busybox"),
        directories=tuple(
            _image_path(d, where, "directories")
            for d in _list(raw, "directories", where, 'a list of image paths, like ["bin", "tmp"]')
        ),
        executables=tuple(
            _host_path(e, where, "executables")
            for e in _list(raw, "executables", where, 'a list of host paths, like ["/bin/ls"]')
        ),
        trees=tuple(
            _tree(tree, where)
            for tree in _list(raw, "trees", where, 'a list of tables, like [[trees]] (see README)')
        ),
        links=tuple(sorted(
            (_image_path(name, where, "links"), _link_target(target, where, name))
            for name, target in links.items()
        )),
    )


def _bad_key(where: str, key: str, should_be: str, value: object) -> ImageRefused:
    return ImageRefused(f"{where}: {key} must be {should_be}, not {reprlib.repr(value)}")


def _list(raw: dict[str, Any], key: str, where: str, should_be: str) -> list[Any]:
    value = raw.get(key, [])
    if not isinstance(value, list):
        raise _bad_key(where, key, should_be, value)
    return value


def _image_path(value: object, where: str, key: str) -> str:
    """A path in the image: Docker takes layer member names as they are, so `..` would land
    outside the image's root."""
    if isinstance(value, str) and "\0" not in value and not _NOT_PATH_PARTS & set(value.split("/")):
        return value
    raise ImageRefused(f"{where}: {key}: {reprlib.repr(value)} is not an image path; give one "
                       'relative to the image root with no empty, "." or ".." part, like "usr/bin"')


def _host_path(value: object, where: str, key: str) -> Path:
    if (
        isinstance(value, str)
        and value.startswith("/")
        and "\0" not in value
        and not _NOT_PATH_PARTS & set(value[1:].split("/"))
    ):
        return Path(value)
    raise ImageRefused(f"{where}: {key}: {reprlib.repr(value)} is not a host path; give an "
                       'absolute one with no empty, "." or ".." part, like "/bin/busybox"')


def _tree(value: object, where: str) -> tuple[Path, frozenset[str]]:
    if not isinstance(value, dict) or "source" not in value or set(value) - _TREE_KEYS:
        raise _bad_key(where, "trees", 'tables with source and, optionally, exclude, like '
                       '{source = "/usr/lib/python3.11", exclude = ["test"]}', value)
    exclude = value.get("exclude", [])
    if not isinstance(exclude, list) or not all(isinstance(name, str) for name in exclude):
        raise _bad_key(where, "trees exclude", 'a list of names, like ["test"]', exclude)
    return _host_path(value["source"], where, "trees source"), frozenset(exclude)


def _link_target(value: object, where: str, name: str) -> str:
    # Any target is harmless: the container resolves it inside its own root, the image.
    if isinstance(value, str) and value and "\0" not in value:
        return value
    raise _bad_key(where, f"links target of {reprlib.repr(name)}", "a non-empty string", value)


def _read_plain(
    path: str | Path, where: str, *, dir_fd: int | None = None, max_bytes: int = -1
) -> bytes:
    """The content of the plain file `path` (up to `max_bytes`), never following a symlink.

    lstat first: a symlink out of the recipe, a FIFO that never answers or /dev/zero is refused
    without being opened; fstat after an O_NOFOLLOW open, in case it was swapped meanwhile.
    """
    try:
        _check_plain(os.lstat(path, dir_fd=dir_fd), where)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError as exc:
        raise ImageRefused(f"cannot read {where}: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as file:
        _check_plain(os.fstat(file.fileno()), where)
        data = file.read(max_bytes + 1 if max_bytes >= 0 else -1)
    if 0 <= max_bytes < len(data):
        raise ImageRefused(f"{where} is larger than {max_bytes} bytes; shorten it")
    return data


def _check_plain(st: os.stat_result, where: str) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise ImageRefused(f"{where} is a symlink; a recipe holds plain files only "
                           "(image links go in recipe.toml's [links])")
    if not stat.S_ISREG(st.st_mode):
        raise ImageRefused(f"{where} is a device, FIFO or socket; a recipe holds plain files only")
    if st.st_nlink > 1:
        raise ImageRefused(f"{where} is a hard link; a recipe holds plain files only (copy it)")


def _read_public_host_file(path: Path, max_bytes: int) -> tuple[bytes, int]:
    """The content and image mode of host file `path`, if every user of this host may read it:
    a recipe may come from someone else, and copying only what any local user could read keeps
    the host's secrets (/etc/shadow, keys under /root) out of an image that may be published.
    A file larger than `max_bytes` is refused before it is read."""
    try:
        real = path.resolve(strict=True)
        st = real.stat()
        public = stat.S_ISREG(st.st_mode) and bool(st.st_mode & stat.S_IROTH) and all(
            parent.stat().st_mode & stat.S_IXOTH for parent in real.parents
        )
        if not public:
            raise ImageRefused(f"{path} is not a regular file every user may read; a recipe "
                               "copies only public host files")
        if st.st_size > max_bytes:
            raise _too_large(str(path))
        return real.read_bytes(), 0o755 if st.st_mode & 0o111 else 0o644
    except FileNotFoundError as exc:
        raise ImageMissing(f"{path} not found: the recipe copies it from the host") from exc
    except OSError as exc:
        raise ImageRefused(f"cannot read {path}: {exc.strerror}") from exc


def _layer_tarball(recipe_dir: Path, spec: _Recipe, recipe: str) -> bytes:
    rootfs = _Rootfs()
    for directory in spec.directories:
        rootfs.add_directory(directory, _WORLD_WRITABLE_STICKY if directory == "tmp" else 0o755)
    if spec.busybox is not None:
        rootfs.add_busybox(spec.busybox)
    linked: list[Path] = []
    for executable in spec.executables:
        linked.append(rootfs.add_host_file(executable))
    for source, exclude in spec.trees:
        linked.extend(rootfs.add_host_tree(source, exclude))
    for library in _shared_libraries(linked):
        rootfs.add_host_file(library)
    for name, target in spec.links:
        rootfs.add_symlink(name, target)
    rootfs.add_recipe_files(recipe_dir / "rootfs", f"{recipe}/rootfs")
    return rootfs.tarball()


def _too_large(what: str) -> ImageRefused:
    return ImageRefused(f"{what} would take the image's files past "
                        f"{MAX_IMAGE_CONTENT_BYTES // 2**20} MiB; a larger image belongs in a "
                        "registry (a module's `image` may name one)")


class _Rootfs:
    """A root filesystem being assembled in memory, written out with fixed metadata."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[tarfile.TarInfo, bytes | None]] = {}
        self._content_bytes = 0

    @property
    def _room(self) -> int:
        return MAX_IMAGE_CONTENT_BYTES - self._content_bytes

    def add_directory(self, name: str, mode: int = 0o755) -> None:
        parent = posixpath.dirname(name)
        if parent and parent not in self._entries:
            self.add_directory(parent)
        self._entries.setdefault(name, (fixed_tarinfo(name, tarfile.DIRTYPE, mode), None))

    def add_file(self, name: str, content: bytes, mode: int) -> None:
        self._claim(name)
        if len(content) > self._room:
            raise _too_large(f"/{name}")
        self._content_bytes += len(content)
        info = fixed_tarinfo(name, tarfile.REGTYPE, mode, len(content))
        self._entries[name] = (info, content)

    def add_symlink(self, name: str, target: str) -> None:
        self._claim(name)
        self._entries[name] = (fixed_tarinfo(name, tarfile.SYMTYPE, 0o777, linkname=target), None)

    def add_host_file(self, path: Path) -> Path:
        """Copy a host file (its content, symlinks resolved) to the same path in the image."""
        # normpath: ldd may name a library as /usr/bin/../lib/x, and `..` must not reach the layer.
        name = posixpath.normpath(path.as_posix()).lstrip("/")
        if name not in self._entries:
            content, mode = _read_public_host_file(path, self._room)
            self.add_file(name, content, mode)
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
        content, _ = _read_public_host_file(busybox, self._room)
        try:
            applets = _run_unprivileged(
                [str(busybox), "--list"], BUSYBOX_LIST_TIMEOUT_S, check=True
            ).stdout.split()
        except (OSError, subprocess.SubprocessError) as exc:
            raise ImageRefused(f"busybox {busybox} does not list its applets ({exc}); "
                               "point busybox at Debian's static busybox") from exc
        # Every busybox has `sh`; the applet names become paths under /bin, so they stay plain.
        if "sh" not in applets or any("/" in a or a in _NOT_PATH_PARTS for a in applets):
            raise ImageRefused(f"{busybox} is not a busybox binary (its --list names no plain "
                               "sh applet); point busybox at Debian's static busybox")
        self.add_file("bin/busybox", content, 0o755)
        for applet in sorted(set(applets) - {"busybox"}):
            self.add_symlink(f"bin/{applet}", "busybox")

    def add_recipe_files(self, files: Path, where: str) -> None:
        """Copy the regular files under the recipe's `rootfs/` to the same paths in the image.

        Nothing here may read outside the recipe: os.fwalk and O_NOFOLLOW opens relative to each
        directory never follow a symlink, even one swapped in during the walk. A symlink is
        refused rather than stored because `links` already makes them, with checked names; a
        hard link could be a host file's second name, and a device or FIFO has no content to copy.
        """
        try:
            if not stat.S_ISDIR(os.lstat(files).st_mode):
                raise ImageRefused(f"{where} is not a directory; make it one or remove it")
        except FileNotFoundError:
            return
        for directory, subdirs, names, dir_fd in os.fwalk(files, onerror=_refuse_unreadable):
            inside = posixpath.relpath(directory, files)
            for name in sorted((*subdirs, *names)):
                inner = posixpath.normpath(posixpath.join(inside, name))
                st = os.lstat(name, dir_fd=dir_fd)
                if stat.S_ISDIR(st.st_mode):
                    continue
                if st.st_size > self._room:
                    raise _too_large(f"{where}/{inner}")
                content = _read_plain(name, f"{where}/{inner}", dir_fd=dir_fd,
                                      max_bytes=self._room)
                self.add_file(inner, content, 0o644)

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


def _run_unprivileged(
    argv: list[str], timeout_s: float, *, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run a recipe's host binary (its busybox; ldd, which loads the executables it lists).

    The recipe names them and may come from someone else, while builds often run as root: as
    root they run as nobody, from /, with a bare environment."""
    drop: dict[str, Any] = {}
    if os.geteuid() == 0:
        drop = {"user": _NOBODY, "group": _NOBODY, "extra_groups": []}
    return subprocess.run(
        argv, check=check, capture_output=True, text=True, timeout=timeout_s, cwd="/",
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"}, **drop,
    )


def _refuse_unreadable(error: OSError) -> None:
    raise ImageRefused(f"cannot read {error.filename}: {error.strerror}") from error


def _shared_libraries(binaries: list[Path]) -> list[Path]:
    """Every shared library (and the dynamic loader) the binaries load, as `ldd` resolves them."""
    if not binaries:
        return []
    libraries: set[Path] = set()
    for binary in binaries:
        listing = _run_unprivileged(["ldd", str(binary)], LDD_TIMEOUT_S)
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
