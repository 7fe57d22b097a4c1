"""The executor: run one job in a locked-down container and return its canonical result.

`Executor.run` unseals the inputs (failing before any container exists if they do not open),
checks them against the module, writes them to a private directory, runs the module's container
under the sandbox of `_docker.ContainerSettings`, and turns `/outputs` into the canonical tarball
whose CID is the result hash. Whatever happens — success, non-zero exit, OOM, timeout, a Docker
error, or cancellation of the caller — the container is removed and the private directory wiped
before `run` returns or raises.

The job's processes run as uid/gid 65534 (nobody) when the node runs as root: the inputs are
given to group 65534 read-only (files 0640, directories 0750) inside a 0700 root-owned private
directory, and `/outputs` is owned by 65534. A node that is not root runs jobs as its own uid,
which then owns every file. In both cases all capabilities are dropped.

`/outputs` is bounded while the job runs (`_outputs_fs`): a filesystem of the module's
`disk_bytes`, so a job cannot fill the provider's disk; a job that fills it fails with
`OutputOverLimit`.
"""

from __future__ import annotations

import functools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

import trio

from lilypad_p2p.exec._catalog import BUILTIN_MODULES
from lilypad_p2p.exec._docker import ContainerSettings, DockerEngine
from lilypad_p2p.exec._errors import (
    ImageMissing,
    ImageRefused,
    InputDecryptionFailed,
    JobFailed,
    JobTimedOut,
    OutOfMemory,
    OutputOverLimit,
    UnknownModule,
    UnsealFailed,
    outcome_class,
)
from lilypad_p2p.exec._images import RECIPES_DIR, ImageArchive, build_image_archive
from lilypad_p2p.exec._inputs import JobInputs
from lilypad_p2p.exec._modules import RECIPE_IMAGE, Module
from lilypad_p2p.exec._outputs_fs import (
    can_bound_outputs,
    filled,
    mount_bounded_outputs,
    mounts_under,
    unmount,
)
from lilypad_p2p.exec._registry import (
    DEFAULT_PULL_LIMITS,
    PullLimits,
    present_registry_image,
    pull_registry_image,
)
from lilypad_p2p.exec._sealing import (
    PrivateKeyLike,
    PublicKeyLike,
    seal_for,
    unseal,
)
from lilypad_p2p.exec._tarball import cid_of_digest, result_cid, tar_directory, write_tarball
from lilypad_p2p.exec._workdir import (
    WORKDIR_PREFIX,
    make_private_workdir,
    unpack_inputs,
    wipe,
    write_inputs,
)
from lilypad_p2p.tally import Tally

logger = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

# Removing a container normally takes well under a second; past this the engine is wedged.
CLEANUP_TIMEOUT_S = 30.0
# A job whose container exits killed by SIGKILL (128 + 9), not by our timeout, is out of memory:
# inside its PID namespace nothing but the kernel can SIGKILL the job's init, and Docker's
# OOMKilled flag alone is not enough - containerd 1.6 can miss the OOM event of a container
# killed right after it started (containerd#8180), and provider and mediators must classify the
# same run the same way. A job that exits 137 by itself is reported as out of memory too.
SIGKILL_EXIT_STATUS = 137
LOG_TAIL_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What to run: a module by name, optionally pinned to the image ID a deal names."""

    module: str
    image_id: str | None = None

    def __post_init__(self) -> None:
        if not self.module:
            raise ValueError("JobSpec.module must name a module")
        if self.image_id is not None and not self.image_id.startswith("sha256:"):
            raise ValueError(f"JobSpec.image_id {self.image_id!r} must be a sha256: image ID")


@dataclass(frozen=True, slots=True)
class RunTimings:
    """Where a run's wall time went, in seconds (for benchmarks and profiling)."""

    prepare_s: float
    create_s: float
    start_s: float
    wait_s: float
    inspect_s: float
    remove_s: float
    collect_s: float
    total_s: float


@dataclass(frozen=True, slots=True)
class JobResult:
    """A successful run: the result hash, the canonical tarball and, if asked, it sealed."""

    module: str
    image_id: str
    result_cid: str
    output_tarball: bytes
    sealed_output: bytes | None
    log_tail: bytes
    timings: RunTimings


@dataclass(frozen=True, slots=True)
class StreamedResult:
    """A successful `run_streamed`: the result hash; the tarball is in the caller's file."""

    module: str
    image_id: str
    result_cid: str
    result_hash: bytes
    output_bytes: int
    log_tail: bytes
    timings: RunTimings


def _counted_in_runs(
    run: Callable[Concatenate[Executor, P], Awaitable[R]],
) -> Callable[Concatenate[Executor, P], Awaitable[R]]:
    """Count each call of `run` in the executor's `runs` by outcome class, with its duration."""

    @functools.wraps(run)
    async def counted(self: Executor, *args: P.args, **kwargs: P.kwargs) -> R:
        with self.runs.timed(lambda exc: (outcome_class(exc),), time.monotonic):
            return await run(self, *args, **kwargs)

    return counted


class Executor:
    """Runs jobs on one Docker engine; safe to use from many trio tasks at once."""

    def __init__(
        self,
        engine: DockerEngine,
        *,
        modules: Mapping[str, Module] = BUILTIN_MODULES,
        workdir_root: Path | None = None,
        recipes_dir: Path = RECIPES_DIR,
        log_tail_bytes: int = LOG_TAIL_BYTES,
        owner: str = "",
        bound_outputs: bool | None = None,
        pull_limits: PullLimits = DEFAULT_PULL_LIMITS,
    ) -> None:
        """`bound_outputs`: give each job a size-limited `/outputs` (default: when root)."""
        self._engine = engine
        self._bound_outputs = can_bound_outputs() if bound_outputs is None else bound_outputs
        if not self._bound_outputs:
            logger.warning(
                "jobs' /outputs are checked against the module's disk_bytes only after the job "
                "exits (bounding them while they run needs root and mkfs.ext4): a job can fill "
                "this machine's disk"
            )
        # Kept by reference: a ModuleCatalog learns modules while the node runs.
        self._modules = modules
        self._workdir_root = workdir_root
        self._owner = owner
        self._recipes_dir = recipes_dir
        self._log_tail_bytes = log_tail_bytes
        self._pull_limits = pull_limits
        self._present_images: dict[str, str] = {}
        self._archives: dict[str, ImageArchive] = {}
        # Runs and registry pulls by outcome class, for the node's metrics.
        self.runs = Tally(("outcome",))
        self.pulls = Tally(("outcome",))

    @classmethod
    async def connect(
        cls,
        *,
        modules: Mapping[str, Module] = BUILTIN_MODULES,
        workdir_root: Path | None = None,
        recipes_dir: Path = RECIPES_DIR,
        owner: str = "",
        bound_outputs: bool | None = None,
        pull_limits: PullLimits = DEFAULT_PULL_LIMITS,
    ) -> Executor:
        """Connect to the Docker engine named by the environment (DOCKER_HOST & co.).

        With an `owner` and a `workdir_root` of its own, the executor is the only one using
        them, so it first cleans up after a crash of its previous run: it removes the containers
        labelled with `owner` and wipes every job directory left under `workdir_root`
        (decrypted inputs must not outlive a killed node).

        Raises:
            DockerUnavailable: no engine answers; the message says how to start one.
        """
        engine = await trio.to_thread.run_sync(DockerEngine.connect)
        executor = cls(
            engine,
            modules=modules,
            workdir_root=workdir_root,
            recipes_dir=recipes_dir,
            owner=owner,
            bound_outputs=bound_outputs,
            pull_limits=pull_limits,
        )
        if owner and workdir_root is not None:
            await trio.to_thread.run_sync(executor._clean_up_after_crash)
        return executor

    def _clean_up_after_crash(self) -> None:
        for container_id in self._engine.job_containers(self._owner):
            self._engine.remove(container_id)
        assert self._workdir_root is not None
        self._workdir_root.mkdir(mode=0o700, parents=True, exist_ok=True)
        for mount_point in mounts_under(self._workdir_root):
            unmount(mount_point)
        for leftover in self._workdir_root.glob(WORKDIR_PREFIX + "*"):
            wipe(leftover)

    def close(self) -> None:
        self._engine.close()

    @property
    def modules(self) -> Mapping[str, Module]:
        return self._modules

    @property
    def engine(self) -> DockerEngine:
        return self._engine

    async def image_archive(self, recipe: str) -> ImageArchive:
        """The deterministic image archive of `recipe` (built once per executor)."""
        if recipe not in self._archives:
            self._archives[recipe] = await trio.to_thread.run_sync(
                build_image_archive, recipe, self._recipes_dir
            )
        return self._archives[recipe]

    async def build_image(self, recipe: str) -> tuple[str, bool]:
        """Make sure `recipe`'s image is loaded; returns its ID and whether it had to be loaded."""
        archive = await self.image_archive(recipe)
        if await trio.to_thread.run_sync(self._engine.has_image, archive.image_id):
            return archive.image_id, False
        await trio.to_thread.run_sync(self._engine.load_image, archive.archive)
        return archive.image_id, True

    async def image_id(self, module_name: str) -> str:
        """The image ID `module_name` runs here, pulling a registry image if it is missing.

        Raises:
            UnknownModule: no such module.
            ImageMissing: the image is neither present nor obtainable (says how to build it).
            ImageRefused: a registry image's digest does not match, it is over the node's size
                limit, or its pull took too long (`_registry.py`).
        """
        module = self._module(module_name)
        if module.image in self._present_images:
            return self._present_images[module.image]
        recipe = RECIPE_IMAGE.match(module.image)
        if recipe:
            image_id = (await self.image_archive(recipe.group(1))).image_id
            # Looking it up raises ImageMissing with the build hint when it is absent.
            await trio.to_thread.run_sync(self._engine.image_id, image_id)
        else:
            present = await present_registry_image(self._engine, module.image, self._pull_limits)
            if present is None:
                with self.pulls.timed(_pull_outcome, time.monotonic):
                    present = await pull_registry_image(
                        self._engine, module.image, self._pull_limits
                    )
            image_id = present
        self._present_images[module.image] = image_id
        return image_id

    async def _pinned_image_id(self, job: JobSpec, module: Module) -> str:
        """The image `module` runs here, refused if the job pins another."""
        image_id = await self.image_id(job.module)
        if job.image_id is not None and job.image_id != image_id:
            raise UnknownModule(
                f"module {module.name} runs image {image_id} here, but the job pins {job.image_id}"
            )
        return image_id

    @_counted_in_runs
    async def run(
        self,
        job: JobSpec,
        sealed_inputs: bytes,
        sealing_key: PrivateKeyLike,
        *,
        timeout_s: float,
        output_recipient: PublicKeyLike | None = None,
    ) -> JobResult:
        """Run `job` on inputs sealed to `sealing_key`'s public key (counted in `runs`).

        Args:
            job: the module to run (and the image ID the deal pins, if any).
            sealed_inputs: a `JobInputs` document sealed with `seal_for` to this node's key.
            sealing_key: this node's X25519 private key (pynacl PrivateKey or 32 raw bytes).
            timeout_s: wall-clock limit of the job's container, from start to exit.
            output_recipient: if given, the output tarball is also sealed to this X25519 key.

        Raises:
            InputDecryptionFailed: the inputs do not open with `sealing_key` (no container ran).
            MalformedInputs, BadParameters: the inputs do not fit the format or the module.
            UnknownModule, ImageMissing, DockerUnavailable, DockerFailed: local problems.
            JobTimedOut, OutOfMemory, JobFailed, OutputRejected: what the job did.
        """
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        started = time.perf_counter()
        module = self._module(job.module)
        try:
            plaintext = await trio.to_thread.run_sync(unseal, sealing_key, sealed_inputs)
        except UnsealFailed as exc:
            raise InputDecryptionFailed(
                f"job inputs for module {module.name} do not open with this node's sealing key "
                "(tampered, truncated or sealed to another key); no container was started"
            ) from exc
        inputs = JobInputs.decode(plaintext)
        del plaintext
        argv = module.render_command(inputs.params)
        image_id = await self._pinned_image_id(job, module)

        workdir = make_private_workdir(self._workdir_root)
        try:
            user = write_inputs(workdir, inputs)
            del inputs
            prepared = time.perf_counter()
            log_tail, container_timings = await self._run_bounded(
                module, image_id, argv, workdir, user, timeout_s)
            collect_started = time.perf_counter()
            tarball = await trio.to_thread.run_sync(
                lambda: tar_directory(workdir / "outputs", max_bytes=module.resources.disk_bytes)
            )
        finally:
            wipe(workdir)
        cid = result_cid(tarball)
        sealed_output = (
            await trio.to_thread.run_sync(seal_for, output_recipient, tarball)
            if output_recipient is not None
            else None
        )
        finished = time.perf_counter()
        return JobResult(
            module=module.name,
            image_id=image_id,
            result_cid=cid,
            output_tarball=tarball,
            sealed_output=sealed_output,
            log_tail=log_tail,
            timings=RunTimings(
                prepare_s=prepared - started,
                collect_s=finished - collect_started,
                total_s=finished - started,
                **container_timings,
            ),
        )

    @_counted_in_runs
    async def run_streamed(
        self,
        job: JobSpec,
        spool: Path,
        sealing_key: PrivateKeyLike,
        context: bytes,
        *,
        timeout_s: float,
        output: Path,
    ) -> StreamedResult:
        """`run` on inputs spooled as a sealed chunk stream (`_job_stream.py`), any size.

        The inputs are unpacked chunk by chunk into the job's private directory; the canonical
        output tarball is written to the new file `output` (0600), hashed as it is written.

        Raises:
            InputDecryptionFailed: the spool does not open with `sealing_key` under `context`.
            The rest as `run`.
        """
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        started = time.perf_counter()
        module = self._module(job.module)
        image_id = await self._pinned_image_id(job, module)
        workdir = make_private_workdir(self._workdir_root)
        try:
            user, params = await trio.to_thread.run_sync(
                unpack_inputs, workdir, spool, sealing_key, context)
            argv = module.render_command(params)
            prepared = time.perf_counter()
            log_tail, container_timings = await self._run_bounded(
                module, image_id, argv, workdir, user, timeout_s)
            collect_started = time.perf_counter()
            digest, size = await trio.to_thread.run_sync(
                write_tarball, workdir / "outputs", output, module.resources.disk_bytes)
        finally:
            wipe(workdir)
        finished = time.perf_counter()
        return StreamedResult(
            module=module.name, image_id=image_id, result_cid=cid_of_digest(digest),
            result_hash=digest, output_bytes=size, log_tail=log_tail,
            timings=RunTimings(prepare_s=prepared - started,
                               collect_s=finished - collect_started,
                               total_s=finished - started, **container_timings),
        )

    async def _run_bounded(
        self, module: Module, image_id: str, argv: tuple[str, ...], workdir: Path, user: str,
        timeout_s: float,
    ) -> tuple[bytes, dict[str, float]]:
        """Run the container on a prepared workdir, `/outputs` bounded to the module's disk."""
        outputs_dir = workdir / "outputs"
        limit = module.resources.disk_bytes
        if self._bound_outputs:
            await trio.to_thread.run_sync(mount_bounded_outputs, outputs_dir, limit)
        try:
            result = await self._run_container(module, image_id, argv, workdir, user, timeout_s)
        except (JobFailed, OutOfMemory) as exc:
            if self._bound_outputs and filled(outputs_dir):
                raise OutputOverLimit(limit) from exc
            raise
        # A job may swallow ENOSPC and exit 0 with truncated outputs: still over its limit.
        if self._bound_outputs and filled(outputs_dir):
            raise OutputOverLimit(limit)
        return result

    async def _run_container(
        self,
        module: Module,
        image_id: str,
        argv: tuple[str, ...],
        workdir: Path,
        user: str,
        timeout_s: float,
    ) -> tuple[bytes, dict[str, float]]:
        settings = ContainerSettings(
            name=f"lilypad-job-{module.name}-{secrets.token_hex(6)}",
            image_id=image_id,
            argv=argv,
            user=user,
            inputs_dir=workdir / "inputs",
            outputs_dir=workdir / "outputs",
            resources=module.resources,
            module=module.name,
            owner=self._owner,
        )
        clock = _Stopwatch()
        # Not abandoned on cancel: we must learn the container's ID to be able to remove it.
        try:
            container_id = await trio.to_thread.run_sync(self._engine.create, settings)
        except ImageMissing:
            self._present_images.pop(module.image, None)  # removed behind our back: look again
            raise
        clock.lap("create_s")
        try:
            await trio.to_thread.run_sync(self._engine.start, container_id)
            clock.lap("start_s")
            with trio.move_on_after(timeout_s) as deadline:
                exit_code = await trio.to_thread.run_sync(
                    self._engine.wait, container_id, timeout_s, abandon_on_cancel=True
                )
            clock.lap("wait_s")
            if deadline.cancelled_caught:
                raise JobTimedOut(timeout_s)
            log_tail = await trio.to_thread.run_sync(
                self._engine.log_tail, container_id, self._log_tail_bytes
            )
            if exit_code != 0:
                if exit_code == SIGKILL_EXIT_STATUS or await trio.to_thread.run_sync(
                    self._engine.was_oom_killed, container_id
                ):
                    raise OutOfMemory(module.resources.memory_bytes, log_tail)
                raise JobFailed(exit_code, log_tail)
            clock.lap("inspect_s")
        finally:
            await self._remove_container(container_id)
            clock.lap("remove_s")
        return log_tail, clock.laps

    async def _remove_container(self, container_id: str) -> None:
        # Shielded: a cancelled caller must still not leave a container (running or not) behind.
        with trio.CancelScope(shield=True):
            with trio.move_on_after(CLEANUP_TIMEOUT_S) as cleanup:
                await trio.to_thread.run_sync(self._engine.remove, container_id)
            if cleanup.cancelled_caught:
                logger.error(
                    "container %s was not removed within %s s; remove it with `docker rm -f %s`",
                    container_id,
                    CLEANUP_TIMEOUT_S,
                    container_id,
                )

    def _module(self, name: str) -> Module:
        try:
            return self._modules[name]
        except KeyError:
            raise UnknownModule(
                f"no module {name!r} on this node; known: {sorted(self._modules)}"
            ) from None


def _pull_outcome(exc: BaseException | None) -> tuple[str]:
    if exc is None:
        return ("ok",)
    return ("refused",) if isinstance(exc, ImageRefused) else ("failed",)


class _Stopwatch:
    def __init__(self) -> None:
        self._last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = now - self._last
        self._last = now
