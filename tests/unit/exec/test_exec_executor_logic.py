"""The executor's control flow against a scripted engine: cleanup on every path, no Docker."""

import threading

import pytest
import trio
from nacl.public import PrivateKey

from lilypad_p2p.exec import (
    ContainerSettings,
    DockerFailed,
    Executor,
    InputDecryptionFailed,
    JobFailed,
    JobInputs,
    JobSpec,
    JobTimedOut,
    Module,
    OutOfMemory,
    Param,
    Resources,
    UnknownModule,
    seal_for,
    unseal,
)

IMAGE = "example.org/jobs@sha256:" + "ab" * 32
RESOURCES = Resources(milli_cpu=250, memory_bytes=32 * 2**20, disk_bytes=2**20, max_processes=20)
MODULE = Module(
    name="cat",
    image=IMAGE,
    command=("/bin/sh", "-c", "cat /inputs/in > /outputs/out", "cat", "{mode}"),
    params={"mode": Param("str", default="plain")},
    resources=RESOURCES,
)
PROVIDER = PrivateKey.generate()


class ScriptedEngine:
    """Stands in for DockerEngine; `wait` blocks until `release` is set (or the container dies)."""

    def __init__(self, *, exit_code=0, oom=False, outputs=None, fail_start=False):
        self.exit_code = exit_code
        self.oom = oom
        self.outputs = outputs if outputs is not None else {"out": b"result"}
        self.fail_start = fail_start
        self.release = threading.Event()
        self.created: list[ContainerSettings] = []
        self.running = threading.Event()
        self.removed: list[str] = []
        self.pulled: list[str] = []

    def has_image(self, reference):
        return True

    def image_id(self, reference):
        return "sha256:" + "cd" * 32

    def image_size(self, reference):
        return 5 * 2**20

    def create(self, settings):
        self.created.append(settings)
        return f"container-{len(self.created)}"

    def start(self, container_id):
        if self.fail_start:
            raise DockerFailed("start refused")
        for name, content in self.outputs.items():
            (self.created[-1].outputs_dir / name).write_bytes(content)
        self.running.set()

    def wait(self, container_id, timeout_s):
        self.release.wait()
        return self.exit_code

    def log_tail(self, container_id, max_bytes):
        return b"log line\n"[-max_bytes:]

    def was_oom_killed(self, container_id):
        return self.oom

    def remove(self, container_id):
        self.removed.append(container_id)
        self.release.set()

    def close(self):
        pass


def _executor(engine, tmp_path):
    return Executor(engine, modules={"cat": MODULE}, workdir_root=tmp_path)


def _sealed(files=None, params=None):
    inputs = JobInputs(files=files or {"in": b"secret input"}, params=params or {})
    return seal_for(PROVIDER.public_key, inputs.encode())


async def test_success_returns_the_tarball_seals_it_and_cleans_up(tmp_path):
    engine = ScriptedEngine()
    engine.release.set()
    creator = PrivateKey.generate()
    result = await _executor(engine, tmp_path).run(
        JobSpec("cat"), _sealed(), PROVIDER, timeout_s=5, output_recipient=creator.public_key
    )
    assert unseal(creator, result.sealed_output) == result.output_tarball
    assert b"result" in result.output_tarball
    assert result.result_cid.startswith("bafkrei")
    assert result.log_tail == b"log line\n"
    assert engine.removed == ["container-1"]
    assert list(tmp_path.iterdir()) == []
    settings = engine.created[0]
    assert settings.argv == ("/bin/sh", "-c", "cat /inputs/in > /outputs/out", "cat", "plain")
    assert settings.image_id == "sha256:" + "cd" * 32


async def test_inputs_are_visible_to_the_job_user_only_inside_a_private_directory(tmp_path):
    engine = ScriptedEngine()
    seen = {}

    def start(container_id):
        settings = engine.created[-1]
        workdir = settings.inputs_dir.parent
        seen["workdir_mode"] = workdir.stat().st_mode & 0o777
        seen["content"] = (settings.inputs_dir / "in").read_bytes()
        seen["file_mode"] = (settings.inputs_dir / "in").stat().st_mode & 0o777
        seen["user"] = settings.user

    engine.start = start
    engine.release.set()
    await _executor(engine, tmp_path).run(JobSpec("cat"), _sealed(), PROVIDER, timeout_s=5)
    assert seen["workdir_mode"] == 0o700
    assert seen["content"] == b"secret input"
    assert seen["file_mode"] == 0o640
    assert seen["user"] != "0:0" and not seen["user"].startswith("0:")
    assert list(tmp_path.iterdir()) == []


async def test_tampered_inputs_fail_before_any_container_or_file_exists(tmp_path):
    engine = ScriptedEngine()
    sealed = bytearray(_sealed())
    sealed[40] ^= 1
    with pytest.raises(InputDecryptionFailed, match="no container was started"):
        await _executor(engine, tmp_path).run(JobSpec("cat"), bytes(sealed), PROVIDER, timeout_s=5)
    assert engine.created == []
    assert list(tmp_path.iterdir()) == []


async def test_timeout_kills_and_removes_the_container(tmp_path, autojump_clock):
    engine = ScriptedEngine()
    with pytest.raises(JobTimedOut):
        await _executor(engine, tmp_path).run(JobSpec("cat"), _sealed(), PROVIDER, timeout_s=30)
    assert engine.removed == ["container-1"]
    assert list(tmp_path.iterdir()) == []


async def test_cancelling_the_caller_still_removes_the_container_and_wipes_inputs(tmp_path):
    engine = ScriptedEngine()
    executor = _executor(engine, tmp_path)
    async with trio.open_nursery() as nursery:

        async def run_job():
            await executor.run(JobSpec("cat"), _sealed(), PROVIDER, timeout_s=600)

        nursery.start_soon(run_job)
        await trio.to_thread.run_sync(engine.running.wait)
        nursery.cancel_scope.cancel()
    assert engine.removed == ["container-1"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("engine_options", "error"),
    [({"exit_code": 3}, JobFailed), ({"exit_code": 137, "oom": True}, OutOfMemory),
     ({"exit_code": 1, "oom": True}, OutOfMemory), ({"exit_code": 137}, OutOfMemory)],
)
async def test_failures_are_typed_and_cleaned_up(tmp_path, engine_options, error):
    engine = ScriptedEngine(**engine_options)
    engine.release.set()
    with pytest.raises(error) as raised:
        await _executor(engine, tmp_path).run(JobSpec("cat"), _sealed(), PROVIDER, timeout_s=5)
    assert raised.value.log_tail == b"log line\n"
    assert engine.removed == ["container-1"]
    assert list(tmp_path.iterdir()) == []


async def test_a_docker_failure_mid_run_still_removes_and_wipes(tmp_path):
    engine = ScriptedEngine(fail_start=True)
    with pytest.raises(DockerFailed):
        await _executor(engine, tmp_path).run(JobSpec("cat"), _sealed(), PROVIDER, timeout_s=5)
    assert engine.removed == ["container-1"]
    assert list(tmp_path.iterdir()) == []


async def test_unknown_module_and_mismatched_image_pin_are_refused(tmp_path):
    engine = ScriptedEngine()
    executor = _executor(engine, tmp_path)
    with pytest.raises(UnknownModule, match="no module"):
        await executor.run(JobSpec("nope"), _sealed(), PROVIDER, timeout_s=5)
    with pytest.raises(UnknownModule, match="pins"):
        await executor.run(
            JobSpec("cat", image_id="sha256:" + "00" * 32), _sealed(), PROVIDER, timeout_s=5
        )
    assert engine.created == []


def test_container_settings_are_the_design_sandbox(tmp_path):
    settings = ContainerSettings(
        name="n",
        image_id="sha256:" + "cd" * 32,
        argv=("/bin/true", "x"),
        user="65534:65534",
        inputs_dir=tmp_path / "in",
        outputs_dir=tmp_path / "out",
        resources=RESOURCES,
        module="cat",
    )
    host = settings.host_config_arguments()
    assert host["network_mode"] == "none"
    assert host["read_only"] is True
    assert host["cap_drop"] == ["ALL"]
    assert host["security_opt"] == ["no-new-privileges"]
    assert host["mem_limit"] == host["memswap_limit"] == RESOURCES.memory_bytes
    assert host["nano_cpus"] == 250_000_000
    assert host["pids_limit"] == 20
    assert host["privileged"] is False
    assert "/tmp" in host["tmpfs"] and "nosuid" in host["tmpfs"]["/tmp"]
    mounts = {m["Target"]: m for m in host["mounts"]}
    assert mounts["/inputs"]["ReadOnly"] is True and mounts["/outputs"]["ReadOnly"] is False
    assert host["log_config"]["Config"]["max-size"]
    assert host["device_requests"] is None
    create = settings.create_arguments()
    assert create["entrypoint"] == ["/bin/true"] and create["command"] == ["x"]
    assert create["network_disabled"] is True
    assert create["user"] == "65534:65534"
    environment = create["environment"]
    assert set(environment) == {
        "HOME",
        "LANG",
        "LC_ALL",
        "PATH",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONHASHSEED",
        "TZ",
    }
    assert environment["PYTHONHASHSEED"] == "0"


def test_gpu_modules_request_gpus(tmp_path):
    gpu = Resources(milli_cpu=1000, memory_bytes=2**30, disk_bytes=2**20, gpu_count=2)
    settings = ContainerSettings(
        name="n",
        image_id="sha256:" + "cd" * 32,
        argv=("/bin/true",),
        user="1:1",
        inputs_dir=tmp_path,
        outputs_dir=tmp_path,
        resources=gpu,
        module="gpu",
    )
    (request,) = settings.host_config_arguments()["device_requests"]
    assert request["Count"] == 2 and request["Capabilities"] == [["gpu"]]


def test_each_run_outcome_has_one_class_name():
    from lilypad_p2p.exec._errors import (
        DockerUnavailable,
        InputDecryptionFailed,
        JobFailed,
        JobTimedOut,
        OutOfMemory,
        OutputOverLimit,
        outcome_class,
    )

    assert outcome_class(None) == "ok"
    assert outcome_class(JobFailed(1, b"")) == "exit_status"
    assert outcome_class(OutOfMemory(1, b"")) == "out_of_memory"
    assert outcome_class(JobTimedOut(1.0)) == "timeout"
    assert outcome_class(OutputOverLimit(10)) == "output_rejected"
    assert outcome_class(InputDecryptionFailed("x")) == "inputs"
    assert outcome_class(DockerUnavailable("x")) == "docker"
    assert outcome_class(RuntimeError("x")) == "other"
    assert outcome_class(KeyboardInterrupt()) == "cancelled"
