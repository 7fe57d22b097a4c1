"""Registry images by digest: check the manifest and its size before Docker pulls anything.

Docker pulls `repository@sha256:...` and verifies the digest itself, but only after it has
started downloading, and it has no size limit. So before a pull the node fetches the manifest
over the registry API (OCI distribution, `GET /v2/<name>/manifests/<digest>`), checks that its
sha256 is the digest the module pins, and adds up the sizes of the config and layers it lists
(the download size). A manifest that does not hash to the pinned digest, an image larger than
the limit, or a registry that does not answer within the timeout is refused with a clear
message before any layer is fetched, and the whole pull is bounded by the same timeout.

Registries on localhost are spoken to over plain HTTP (as Docker does by default); any other
over HTTPS. Registries that require a login are not supported for pulls by the node: pull such
an image yourself (`docker pull`); a present image is used as it is (its size is still checked).
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
from dataclasses import dataclass
from typing import Any

import requests
import trio

from lilypad_p2p.exec._docker import DockerEngine
from lilypad_p2p.exec._errors import ImageMissing, ImageRefused

DEFAULT_MAX_IMAGE_BYTES = 2 * 1024**3
DEFAULT_PULL_TIMEOUT_S = 300.0
MANIFEST_TIMEOUT_S = 20.0
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
_REFERENCE = re.compile(r"^(?P<name>[a-z0-9][a-z0-9._/:-]*)@(?P<digest>sha256:[0-9a-f]{64})$")
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")
_MANIFEST_TYPES = ", ".join((
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
))
_ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}


@dataclass(frozen=True, slots=True)
class PullLimits:
    """How large an image a node pulls (download size, bytes) and how long it waits."""

    max_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    timeout_s: float = DEFAULT_PULL_TIMEOUT_S


DEFAULT_PULL_LIMITS = PullLimits()


@dataclass(frozen=True, slots=True)
class ImageReference:
    """`registry/repository@sha256:digest`, split."""

    registry: str
    repository: str
    digest: str

    @classmethod
    def parse(cls, reference: str) -> ImageReference:
        match = _REFERENCE.match(reference)
        if match is None:
            raise ImageRefused(f"{reference!r} is not repository@sha256:<64 hex digits>")
        first, _, rest = match["name"].partition("/")
        # As Docker reads names: the first part is a registry host if it looks like one.
        if rest and ("." in first or ":" in first or first == "localhost"):
            return cls(first, rest, match["digest"])
        repository = match["name"] if "/" in match["name"] else f"library/{match['name']}"
        return cls("registry-1.docker.io", repository, match["digest"])

    @property
    def base_url(self) -> str:
        host = self.registry.rsplit(":", 1)[0] if not self.registry.startswith("[") else (
            self.registry.split("]")[0] + "]")
        scheme = "http" if host in _LOCAL_HOSTS else "https"
        return f"{scheme}://{self.registry}/v2/{self.repository}"


def download_size(reference: str, *, timeout_s: float = MANIFEST_TIMEOUT_S) -> int:
    """The bytes a pull of `reference` downloads (config + layers), its manifest verified.

    Blocks. Raises:
        ImageRefused: the manifest does not hash to the pinned digest, or is not a manifest.
        ImageMissing: the registry cannot be reached or does not have the image.
    """
    image = ImageReference.parse(reference)
    manifest = _manifest(image, image.digest, reference, timeout_s)
    if "manifests" in manifest:  # an index: the entry for this machine
        arch = _ARCHITECTURES.get(platform.machine(), platform.machine())
        chosen = [
            entry for entry in manifest["manifests"]
            if entry.get("platform", {}).get("os") == "linux"
            and entry.get("platform", {}).get("architecture") == arch
        ]
        if not chosen:
            raise ImageRefused(f"image {reference} has no linux/{arch} variant")
        manifest = _manifest(image, chosen[0]["digest"], reference, timeout_s)
    try:
        sizes = [manifest["config"]["size"], *(layer["size"] for layer in manifest["layers"])]
    except (KeyError, TypeError) as exc:
        raise ImageRefused(f"image {reference}: the registry's manifest lists no sizes") from exc
    if not all(type(size) is int and size >= 0 for size in sizes):
        raise ImageRefused(f"image {reference}: the registry's manifest has bad sizes")
    return sum(sizes)


def _manifest(image: ImageReference, digest: str, reference: str, timeout_s: float) -> Any:
    url = f"{image.base_url}/manifests/{digest}"
    try:
        response = requests.get(
            url, headers={"Accept": _MANIFEST_TYPES}, timeout=timeout_s, stream=True
        )
        body = response.raw.read(MAX_MANIFEST_BYTES + 1, decode_content=True)
    except requests.RequestException as exc:
        raise ImageMissing(
            f"image {reference} could not be pulled: registry {image.registry} unreachable "
            f"({exc})"
        ) from exc
    if response.status_code == 401:
        raise ImageMissing(
            f"image {reference} could not be pulled: registry {image.registry} wants a login; "
            "pull the image "
            "yourself with `docker pull` and the node will use it"
        )
    if response.status_code != 200:
        raise ImageMissing(
            f"image {reference} could not be pulled: registry {image.registry} answered "
            f"{response.status_code} "
            f"for manifest {digest}"
        )
    if len(body) > MAX_MANIFEST_BYTES:
        raise ImageRefused(f"image {reference}: manifest larger than {MAX_MANIFEST_BYTES} B")
    actual = "sha256:" + hashlib.sha256(body).hexdigest()
    if actual != digest:
        raise ImageRefused(
            f"image {reference}: digest mismatch, registry {image.registry} served a manifest "
            f"whose digest is {actual}, not {digest}; refusing the image"
        )
    try:
        return json.loads(body)
    except ValueError as exc:
        raise ImageRefused(f"image {reference}: the manifest is not JSON") from exc


async def present_registry_image(
    engine: DockerEngine, reference: str, limits: PullLimits
) -> str | None:
    """The local image ID of `reference` if the engine has it (and it is within the size limit).

    Raises:
        ImageRefused: the image here is larger than `limits.max_bytes`.
    """
    if not await trio.to_thread.run_sync(engine.has_image, reference):
        return None
    size = await trio.to_thread.run_sync(engine.image_size, reference)
    if size > limits.max_bytes:
        raise ImageRefused(
            f"image {reference} is {size} bytes here, over this node's limit of "
            f"{limits.max_bytes} bytes"
        )
    return await trio.to_thread.run_sync(engine.image_id, reference)


async def pull_registry_image(engine: DockerEngine, reference: str, limits: PullLimits) -> str:
    """Pull `reference` (checked and bounded) and return its local image ID.

    Raises:
        ImageRefused: digest mismatch, larger than `limits.max_bytes`, or pull too slow.
        ImageMissing: the registry is unreachable or does not have it.
    """
    with trio.move_on_after(limits.timeout_s) as deadline:
        size = await trio.to_thread.run_sync(
            lambda: download_size(reference, timeout_s=min(MANIFEST_TIMEOUT_S, limits.timeout_s)),
            abandon_on_cancel=True,
        )
        if size > limits.max_bytes:
            raise ImageRefused(
                f"image {reference} is {size} bytes to download, over this node's limit of "
                f"{limits.max_bytes} bytes; refusing to pull it"
            )
        await trio.to_thread.run_sync(engine.pull, reference, abandon_on_cancel=True)
    if deadline.cancelled_caught:
        raise ImageRefused(
            f"pulling image {reference} took longer than this node's {limits.timeout_s:g} s "
            "limit; refusing it"
        )
    return await trio.to_thread.run_sync(engine.image_id, reference)
