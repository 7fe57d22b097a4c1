"""The executor against a real Docker engine: results, determinism, the sandbox, cleanup."""

import hashlib
import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import docker
import docker.errors
import pytest
import trio
from nacl.public import PrivateKey

from lilypad_p2p.exec import (
    BUILTIN_MODULES,
    DockerEngine,
    DockerUnavailable,
    Executor,
    ImageMissing,
    InputDecryptionFailed,
    JobFailed,
    JobInputs,
    JobSpec,
    JobTimedOut,
    Module,
    OutOfMemory,
    OutputRejected,
    Resources,
    seal_for,
    unseal,
)
from lilypad_p2p.exec._docker import JOB_ENVIRONMENT
from lilypad_p2p.exec._images import RECIPES_DIR
from lilypad_p2p.testing import require_real

pytestmark = pytest.mark.docker

MIB = 2**20
PROVIDER = PrivateKey.generate()
JOB_CREATOR = PrivateKey.generate()
# How long a test may wait for a container it started to be seen running.
CONTAINER_RUNNING_DEADLINE_S = 30.0


def shell(name, script, **resources):
    limits = {"milli_cpu": 500, "memory_bytes": 64 * MIB, "disk_bytes": 16 * MIB, **resources}
    return Module(
        name=name,
        image="recipe:busybox",
        command=("/bin/sh", "-c", script),
        resources=Resources(**limits),
    )


TEST_MODULES = {
    m.name: m
    for m in (
        shell(
            "probe",
            "id -u > /outputs/uid; id -g > /outputs/gid; cat /inputs/dir/data > /outputs/copy; "
            "env | sort > /outputs/env; hostname > /outputs/hostname; "
            "ls /sys/class/net > /outputs/interfaces; "
            "if touch /inputs/new 2>/dev/null; then echo yes; else echo no; fi "
            "> /outputs/inputs_rw",
        ),
        shell("network", "nc -w 2 1.1.1.1 80 </dev/null && echo connected"),
        shell("write-root", "echo x > /escape && echo wrote"),
        shell(
            "hog",
            "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived",
            memory_bytes=16 * MIB,
        ),
        shell("sleeper", "sleep 60"),
        shell(
            "forker",
            "i=0; while [ $i -lt 500 ]; do sleep 30 & i=$((i+1)); done; wait",
            max_processes=16,
        ),
        shell("flood", "head -c 2000000 /dev/zero > /outputs/big", disk_bytes=1 * MIB),
        Module(
            name="remote",
            image="registry.invalid/jobs@sha256:" + "ab" * 32,
            command=("/bin/true",),
            resources=Resources(milli_cpu=100, memory_bytes=16 * MIB, disk_bytes=MIB),
        ),
    )
}


class RecordingEngine(DockerEngine):
    """The real engine, remembering every container it created so tests can check removal."""

    def __init__(self, api):
        super().__init__(api)
        self.created: list[str] = []

    def create(self, settings):
        container_id = super().create(settings)
        self.created.append(container_id)
        return container_id


def _connect(engine_class=RecordingEngine):
    try:
        return engine_class.connect()
    except DockerUnavailable as exc:
        require_real("docker", str(exc))


@pytest.fixture
def docker_api():
    _connect(DockerEngine).close()
    client = docker.from_env()
    yield client.api
    client.close()


@pytest.fixture
async def executor(tmp_path, docker_api):
    if not Path("/bin/busybox").is_file():
        require_real("busybox-static", "/bin/busybox missing; scripts/setup installs it")
    engine = _connect()
    workdir_root = tmp_path / "work"
    workdir_root.mkdir()
    executor = Executor(
        engine, modules={**BUILTIN_MODULES, **TEST_MODULES}, workdir_root=workdir_root
    )
    await executor.build_image("busybox")
    yield executor
    assert_clean(executor, docker_api)
    executor.close()


def assert_clean(executor, docker_api):
    """No container this executor created survives, and no input file is left on disk."""
    for container_id in executor.engine.created:
        with pytest.raises(docker.errors.NotFound):
            docker_api.inspect_container(container_id)
    assert list(executor._workdir_root.iterdir()) == []


def sealed(params=None, files=None):
    return seal_for(PROVIDER.public_key, JobInputs(files=files or {}, params=params or {}).encode())


def members(tarball):
    with tarfile.open(fileobj=io.BytesIO(tarball)) as archive:
        return {m.name: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}


async def test_hash_job_sealed_output_decrypts_to_the_expected_digest(executor, docker_api):
    text = "lilypad p2p ✓"
    result = await executor.run(
        JobSpec("hash"),
        sealed({"text": text}),
        PROVIDER,
        timeout_s=30,
        output_recipient=JOB_CREATOR.public_key,
    )
    tarball = unseal(JOB_CREATOR, result.sealed_output)
    assert tarball == result.output_tarball
    digest = hashlib.sha256(text.encode()).hexdigest()
    assert members(tarball) == {"digest.txt": f"{digest}\n".encode()}
    assert_clean(executor, docker_api)


async def test_same_deterministic_job_twice_gives_the_same_cid(executor, docker_api):
    document = b"the cat sat on the mat\nthe end\n"
    runs = [
        await executor.run(
            JobSpec("wordcount"),
            sealed({"top": 2}, {"input.txt": document}),
            PROVIDER,
            timeout_s=30,
        )
        for _ in range(2)
    ]
    assert runs[0].result_cid == runs[1].result_cid
    assert runs[0].output_tarball == runs[1].output_tarball
    outputs = members(runs[0].output_tarball)
    assert outputs["counts.txt"].split() == [b"2", b"8", b"31"]
    assert outputs["top-words.txt"].split() == [b"3", b"the", b"1", b"cat"]
    assert_clean(executor, docker_api)


async def test_non_deterministic_module_gives_different_cids(executor, docker_api):
    first = await executor.run(JobSpec("random"), sealed(), PROVIDER, timeout_s=30)
    second = await executor.run(JobSpec("random"), sealed(), PROVIDER, timeout_s=30)
    assert first.result_cid != second.result_cid
    assert len(members(first.output_tarball)["random.bin"]) == 32
    assert_clean(executor, docker_api)


async def test_job_runs_unprivileged_with_fixed_env_no_network_and_read_only_inputs(
    executor, docker_api
):
    result = await executor.run(
        JobSpec("probe"), sealed(files={"dir/data": b"payload"}), PROVIDER, timeout_s=30
    )
    outputs = members(result.output_tarball)
    if os.geteuid() == 0:
        assert outputs["uid"] == outputs["gid"] == b"65534\n"
    assert outputs["copy"] == b"payload"
    assert outputs["inputs_rw"] == b"no\n"
    assert outputs["hostname"] == b"job\n"
    assert outputs["interfaces"].split() == [b"lo"]
    env = dict(line.split("=", 1) for line in outputs["env"].decode().splitlines())
    # sh itself adds PWD and SHLVL, Docker adds HOSTNAME; nothing comes from the host.
    assert set(env) - {"HOSTNAME", "PWD", "SHLVL"} == set(JOB_ENVIRONMENT)
    assert env["TZ"] == "UTC"
    assert_clean(executor, docker_api)


async def test_opening_a_network_socket_fails(executor, docker_api):
    with pytest.raises(JobFailed) as failed:
        await executor.run(JobSpec("network"), sealed(), PROVIDER, timeout_s=30)
    assert failed.value.exit_code != 0
    assert b"unreachable" in failed.value.log_tail.lower()
    assert_clean(executor, docker_api)


async def test_writing_to_the_root_filesystem_fails(executor, docker_api):
    with pytest.raises(JobFailed) as failed:
        await executor.run(JobSpec("write-root"), sealed(), PROVIDER, timeout_s=30)
    assert b"Read-only file system" in failed.value.log_tail
    assert_clean(executor, docker_api)


async def test_allocating_past_the_memory_limit_is_out_of_memory(executor, docker_api):
    with pytest.raises(OutOfMemory) as oom:
        await executor.run(JobSpec("hog"), sealed(), PROVIDER, timeout_s=60)
    assert oom.value.memory_bytes == 16 * MIB
    assert_clean(executor, docker_api)


async def test_sleeping_past_the_timeout_is_killed_and_removed(executor, docker_api):
    started = trio.current_time()
    with pytest.raises(JobTimedOut):
        await executor.run(JobSpec("sleeper"), sealed(), PROVIDER, timeout_s=1.5)
    # Killed, not finished: the job sleeps 60 s.
    assert trio.current_time() - started < 30
    assert len(executor.engine.created) == 1
    assert_clean(executor, docker_api)


async def test_forking_without_bound_hits_the_pids_limit(executor, docker_api):
    with pytest.raises(JobFailed) as failed:
        await executor.run(JobSpec("forker"), sealed(), PROVIDER, timeout_s=60)
    assert b"can't fork" in failed.value.log_tail
    assert_clean(executor, docker_api)


async def test_tampered_inputs_are_rejected_before_any_container_starts(executor, docker_api):
    tampered = bytearray(sealed({"text": "x"}))
    tampered[-1] ^= 0x80
    with pytest.raises(InputDecryptionFailed):
        await executor.run(JobSpec("hash"), bytes(tampered), PROVIDER, timeout_s=30)
    with pytest.raises(InputDecryptionFailed):
        other_key = PrivateKey.generate().public_key
        await executor.run(
            JobSpec("hash"),
            seal_for(other_key, JobInputs(params={"text": "x"}).encode()),
            PROVIDER,
            timeout_s=30,
        )
    assert executor.engine.created == []
    assert_clean(executor, docker_api)


async def test_cancelling_the_caller_kills_and_removes_the_running_container(executor, docker_api):
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: executor.run(JobSpec("sleeper"), sealed(), PROVIDER, timeout_s=120)
        )
        with trio.fail_after(CONTAINER_RUNNING_DEADLINE_S):
            while not executor.engine.created or not _running(docker_api, executor):
                await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
    assert_clean(executor, docker_api)


def _running(docker_api, executor):
    try:
        return docker_api.inspect_container(executor.engine.created[0])["State"]["Running"]
    except docker.errors.NotFound:
        return False


async def test_outputs_over_the_disk_allowance_are_rejected(executor, docker_api):
    with pytest.raises(OutputRejected):
        await executor.run(JobSpec("flood"), sealed(), PROVIDER, timeout_s=30)
    assert_clean(executor, docker_api)


async def test_image_not_built_says_how_to_build_it(tmp_path, docker_api):
    recipes = tmp_path / "recipes"
    shutil.copytree(RECIPES_DIR, recipes)
    # A different rootfs is a different image ID, which nobody has loaded.
    (recipes / "busybox/rootfs/etc/motd").write_bytes(os.urandom(16).hex().encode())
    engine = _connect()
    executor = Executor(engine, recipes_dir=recipes, workdir_root=tmp_path)
    try:
        with pytest.raises(ImageMissing, match="lilypad-p2p modules build"):
            await executor.run(JobSpec("hash"), sealed({"text": "x"}), PROVIDER, timeout_s=30)
        assert engine.created == []
    finally:
        executor.close()


async def test_registry_image_that_cannot_be_pulled_is_image_missing(executor, docker_api):
    with pytest.raises(ImageMissing, match="could not be pulled"):
        await executor.run(JobSpec("remote"), sealed(), PROVIDER, timeout_s=30)
    assert executor.engine.created == []


def test_no_engine_says_how_to_start_one(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    with pytest.raises(DockerUnavailable, match="ensure-docker"):
        DockerEngine.connect()


PYTHON_JOB = b"""
import csv, json
with open("/inputs/data.csv", newline="") as fh:
    rows = [(name, int(value)) for name, value in csv.reader(fh)]
names = {name for name, _ in rows}  # iteration order depends on the string hash seed
with open("/outputs/summary.json", "w") as fh:
    json.dump({"total": sum(v for _, v in rows), "names": list(names)}, fh)
"""


async def test_python_job_is_deterministic(executor, docker_api):
    try:
        await executor.build_image("python")
    except ImageMissing as exc:
        require_real("Debian python3.11", str(exc))
    rows = [(f"name{i}", i * 7 % 13) for i in range(200)]
    data = "".join(f"{name},{value}\n" for name, value in rows).encode()
    inputs = sealed(files={"main.py": PYTHON_JOB, "data.csv": data})
    first = await executor.run(JobSpec("python"), inputs, PROVIDER, timeout_s=60)
    second = await executor.run(JobSpec("python"), inputs, PROVIDER, timeout_s=60)
    assert first.result_cid == second.result_cid
    summary = json.loads(members(first.output_tarball)["summary.json"])
    assert summary["total"] == sum(value for _, value in rows)
    assert sorted(summary["names"]) == sorted(name for name, _ in rows)
    assert_clean(executor, docker_api)


async def test_concurrent_jobs_each_get_their_own_result(executor, docker_api):
    texts = [f"job {i}" for i in range(4)]
    results: dict[str, bytes] = {}

    async def run_one(text):
        result = await executor.run(JobSpec("hash"), sealed({"text": text}), PROVIDER, timeout_s=60)
        results[text] = members(result.output_tarball)["digest.txt"]

    async with trio.open_nursery() as nursery:
        for text in texts:
            nursery.start_soon(run_one, text)
    assert results == {t: f"{hashlib.sha256(t.encode()).hexdigest()}\n".encode() for t in texts}
    assert len(executor.engine.created) == 4
    assert_clean(executor, docker_api)
