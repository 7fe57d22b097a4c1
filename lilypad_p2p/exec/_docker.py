"""The blocking Docker engine calls the executor makes, with docker's errors mapped to ours.

Everything here blocks; the executor calls it through `trio.to_thread.run_sync`. The low-level
`APIClient` is used on purpose: the high-level `containers.create` adds an inspect round trip per
call, which is measurable against a bare `docker run`.

`container_settings` is pure: it turns a job into the exact create/host-config arguments, so the
sandbox (DESIGN §6) is checked by unit tests without a Docker engine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.types import DeviceRequest, LogConfig, Mount

from lilypad_p2p.exec._errors import DockerFailed, DockerUnavailable, ImageMissing
from lilypad_p2p.exec._modules import Resources

DOCKER_API_TIMEOUT_S = 30.0
# The HTTP read of `wait` must outlive the job's own timeout, which is enforced by the executor.
WAIT_HTTP_MARGIN_S = 30.0
IMAGE_PULL_TIMEOUT_S = 600.0
# Docker keeps at most this much of a job's stdout+stderr on disk (json-file rotation).
LOG_FILE_MAX = "1m"
TMPFS_MAX_BYTES = 64 * 1024 * 1024
JOB_HOSTNAME = "job"
JOB_LABEL = "org.lilypad-p2p.job"
MODULE_LABEL = "org.lilypad-p2p.module"
# Which executor (node and role) created a container, so that one can clean up after a crash
# without touching other nodes' jobs on a shared engine.
OWNER_LABEL = "org.lilypad-p2p.owner"
# The only environment a job sees: nothing of the host's leaks in.
JOB_ENVIRONMENT: Mapping[str, str] = {
    "HOME": "/tmp",
    "LANG": "C",
    "LC_ALL": "C",
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    # Python jobs: string hashing (hence set and dict-of-set order) identical on every run.
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONHASHSEED": "0",
    "TZ": "UTC",
}

START_HINT = (
    "start one with `bash scripts/ensure-docker` (installs Debian's docker.io and runs dockerd), "
    "or `systemctl start docker`; check DOCKER_HOST if the engine is remote"
)


@dataclass(frozen=True, slots=True)
class ContainerSettings:
    """Everything a job's container is created with."""

    name: str
    image_id: str
    argv: tuple[str, ...]
    user: str
    inputs_dir: Path
    outputs_dir: Path
    resources: Resources
    module: str
    owner: str = ""

    def create_arguments(self) -> dict[str, Any]:
        """Keyword arguments of `APIClient.create_container`, minus `host_config`."""
        return {
            "image": self.image_id,
            # The whole argv comes from the module: an image's own entrypoint never runs.
            "entrypoint": [self.argv[0]],
            "command": list(self.argv[1:]),
            "user": self.user,
            "environment": dict(JOB_ENVIRONMENT),
            "working_dir": "/tmp",
            "hostname": JOB_HOSTNAME,
            "name": self.name,
            "labels": {JOB_LABEL: "1", MODULE_LABEL: self.module, OWNER_LABEL: self.owner},
            "network_disabled": True,
            "detach": True,
            "stdin_open": False,
            "tty": False,
        }

    def host_config_arguments(self) -> dict[str, Any]:
        """Keyword arguments of `APIClient.create_host_config`: the sandbox."""
        resources = self.resources
        tmpfs_bytes = min(resources.disk_bytes, TMPFS_MAX_BYTES)
        return {
            "network_mode": "none",
            "read_only": True,
            "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={tmpfs_bytes},mode=1777"},
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "mem_limit": resources.memory_bytes,
            # Equal to mem_limit: no swap, so exceeding memory means the OOM killer, not thrashing.
            "memswap_limit": resources.memory_bytes,
            "nano_cpus": resources.milli_cpu * 1_000_000,
            "pids_limit": resources.max_processes,
            "ipc_mode": "private",
            "privileged": False,
            "mounts": [
                Mount("/inputs", str(self.inputs_dir), type="bind", read_only=True),
                Mount("/outputs", str(self.outputs_dir), type="bind", read_only=False),
            ],
            "log_config": LogConfig(
                type="json-file", config={"max-size": LOG_FILE_MAX, "max-file": "1"}
            ),
            "device_requests": (
                [DeviceRequest(count=resources.gpu_count, capabilities=[["gpu"]])]
                if resources.gpu_count
                else None
            ),
        }


@contextlib.contextmanager
def _mapped_errors(doing: str) -> Iterator[None]:
    try:
        yield
    except docker.errors.ImageNotFound as exc:
        raise ImageMissing(
            f"{doing}: {exc.explanation}; build it with `lilypad-p2p modules build`"
        ) from exc
    except docker.errors.APIError as exc:
        raise DockerFailed(f"{doing}: Docker refused: {exc.explanation or exc}") from exc
    except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
        raise DockerUnavailable(f"{doing}: no Docker engine answers ({exc}); {START_HINT}") from exc


class DockerEngine:
    """A connection to the Docker engine; every method blocks."""

    def __init__(self, api: docker.APIClient) -> None:
        self._api = api

    @classmethod
    def connect(cls) -> DockerEngine:
        """Connect using DOCKER_HOST & co., as the docker CLI does.

        Raises:
            DockerUnavailable: no engine answers, with how to start one.
        """
        with _mapped_errors("connecting to Docker"):
            client = docker.from_env(timeout=int(DOCKER_API_TIMEOUT_S))
            client.api.ping()
            return cls(client.api)

    def close(self) -> None:
        self._api.close()

    def ping(self) -> None:
        """Raises DockerUnavailable unless the engine answers."""
        with _mapped_errors("pinging Docker"):
            self._api.ping()

    def has_image(self, reference: str) -> bool:
        with _mapped_errors(f"looking up image {reference}"):
            try:
                self._api.inspect_image(reference)
            except docker.errors.ImageNotFound:
                return False
            return True

    def image_id(self, reference: str) -> str:
        with _mapped_errors(f"looking up image {reference}"):
            return self._api.inspect_image(reference)["Id"]

    def image_size(self, reference: str) -> int:
        """The image's size on disk (bytes, as `docker images` shows it)."""
        with _mapped_errors(f"looking up image {reference}"):
            return int(self._api.inspect_image(reference).get("Size") or 0)

    def load_image(self, archive: bytes) -> None:
        with _mapped_errors("loading an image archive"):
            for message in self._api.load_image(archive):
                if "error" in message:
                    raise DockerFailed(f"docker load failed: {message['error']}")

    def pull(self, reference: str) -> None:
        """Pull a `repository@sha256:...` reference.

        Raises:
            ImageMissing: the registry is unreachable or refuses, with its reason.
        """
        try:
            with _mapped_errors(f"pulling {reference}"):
                self._api.pull(reference)
        except DockerFailed as exc:
            raise ImageMissing(
                f"image {reference} is not present and could not be pulled: {exc}"
            ) from exc

    def create(self, settings: ContainerSettings) -> str:
        with _mapped_errors(f"creating the container for module {settings.module}"):
            host_config = self._api.create_host_config(**settings.host_config_arguments())
            created = self._api.create_container(
                host_config=host_config, **settings.create_arguments()
            )
            return created["Id"]

    def start(self, container_id: str) -> None:
        with _mapped_errors("starting the job container"):
            self._api.start(container_id)

    def wait(self, container_id: str, timeout_s: float) -> int:
        """Block until the container exits; its exit status."""
        with _mapped_errors("waiting for the job container"):
            return int(
                self._api.wait(container_id, timeout=timeout_s + WAIT_HTTP_MARGIN_S)["StatusCode"]
            )

    def was_oom_killed(self, container_id: str) -> bool:
        with _mapped_errors("inspecting the job container"):
            return bool(self._api.inspect_container(container_id)["State"]["OOMKilled"])

    def log_tail(self, container_id: str, max_bytes: int) -> bytes:
        """The last `max_bytes` of the job's stdout and stderr, interleaved."""
        with _mapped_errors("reading the job's logs"):
            logs = self._api.logs(container_id, stdout=True, stderr=True)
        return logs[-max_bytes:]

    def remove(self, container_id: str) -> None:
        """Kill (if running) and remove a container; a container already gone is fine."""
        with _mapped_errors("removing the job container"):
            try:
                self._api.remove_container(container_id, force=True, v=True)
            except docker.errors.NotFound:
                return
            except docker.errors.APIError as exc:
                # The engine may already be removing it (409); anything else is a real failure.
                if exc.status_code != 409 or "in progress" not in str(exc.explanation):
                    raise

    def job_containers(self, owner: str | None = None) -> list[str]:
        """IDs of every container, running or not, that the executor (of `owner`) created."""
        label = JOB_LABEL if owner is None else f"{OWNER_LABEL}={owner}"
        with _mapped_errors("listing job containers"):
            return [c["Id"] for c in self._api.containers(all=True, filters={"label": label})]
