"""A real OCI registry on this machine (tests, the simnet's user module): Debian's
`docker-registry` on a free localhost port, images pushed to it with `skopeo` from archives
built offline (no public registry is reachable here).

    with local_registry(tmp_path) as registry:
        digest = registry.push_archive(archive_bytes, "demo/say", "v1")
        reference = registry.reference("demo/say", digest)   # localhost:PORT/demo/say@sha256:..

Docker treats localhost registries as plain HTTP without configuration, so a node pulls from it
as from any registry.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

REGISTRY_START_TIMEOUT_S = 30.0
PUSH_TIMEOUT_S = 120.0
_CONFIG = """version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


def registry_missing() -> str | None:
    """Why a local registry cannot run here (None: it can)."""
    for tool in ("docker-registry", "skopeo"):
        if shutil.which(tool) is None:
            return f"{tool} not found: apt-get install docker-registry skopeo (scripts/setup does)"
    return None


@dataclass(frozen=True, slots=True)
class LocalRegistry:
    host: str  # localhost:PORT

    def reference(self, repository: str, digest: str) -> str:
        return f"{self.host}/{repository}@{digest}"

    def push_archive(self, archive: bytes, repository: str, tag: str) -> str:
        """Push a `docker save`-format archive; the manifest digest the registry stores."""
        with tempfile.TemporaryDirectory(prefix="lilypad-push-") as scratch:
            source = Path(scratch) / "image.tar"
            source.write_bytes(archive)
            digest_file = Path(scratch) / "digest"
            subprocess.run(
                ["skopeo", "copy", "--quiet", "--dest-tls-verify=false",
                 "--digestfile", str(digest_file), f"docker-archive:{source}",
                 f"docker://{self.host}/{repository}:{tag}"],
                check=True, capture_output=True, timeout=PUSH_TIMEOUT_S,
            )
            return digest_file.read_text().strip()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def local_registry(directory: Path) -> Iterator[LocalRegistry]:
    """A registry storing under `directory`, up until the block ends."""
    missing = registry_missing()
    if missing:
        raise FileNotFoundError(missing)
    port = _free_port()
    config = directory / "registry.yml"
    (directory / "storage").mkdir(parents=True, exist_ok=True)
    config.write_text(_CONFIG.format(root=directory / "storage", port=port))
    log = (directory / "registry.log").open("wb")
    process = subprocess.Popen(["docker-registry", "serve", str(config)],
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_ready(f"http://127.0.0.1:{port}/v2/", process)
        yield LocalRegistry(f"localhost:{port}")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + REGISTRY_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited with {process.returncode}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)  # polling readiness of a process we cannot be notified by
    raise RuntimeError(f"docker-registry did not answer {url} in {REGISTRY_START_TIMEOUT_S} s")
