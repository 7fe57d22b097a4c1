"""`/outputs` is bounded while the job runs: a job cannot write more than its module declares."""

import os
import re
import subprocess
from pathlib import Path

import pytest
from nacl.public import PrivateKey

from lilypad_p2p.exec import (
    DockerEngine,
    DockerUnavailable,
    Executor,
    JobFailed,
    JobInputs,
    JobSpec,
    Module,
    OutputOverLimit,
    Resources,
    seal_for,
)
from lilypad_p2p.exec._executor import WORKDIR_PREFIX
from lilypad_p2p.exec._outputs_fs import can_bound_outputs, mount_bounded_outputs, mounts_under
from lilypad_p2p.testing import require_real

pytestmark = pytest.mark.docker

MIB = 2**20
KEY = PrivateKey.generate()


def shell(name, script, disk_bytes, memory_bytes=64 * MIB):
    return Module(
        name=name,
        image="recipe:busybox",
        command=("/bin/sh", "-c", script),
        resources=Resources(milli_cpu=1000, memory_bytes=memory_bytes, disk_bytes=disk_bytes),
    )


MODULES = {
    m.name: m
    for m in (
        # Writes 200 MiB against a 1 MiB allowance, then reports what it managed to write.
        shell("fill", "head -c 209715200 /dev/zero > /outputs/big; du -sk /outputs; exit 3", MIB),
        shell("fill-quietly", "head -c 209715200 /dev/zero > /outputs/big || true", MIB),
        # Many empty files in a small allowance: inodes must not run out first.
        shell(
            "many-files",
            "mkdir /outputs/d; i=0; while [ $i -lt 3000 ]; do : > /outputs/d/f$i; i=$((i+1)); done",
            MIB,
        ),
        # Exactly its allowance, in one file and many small ones.
        shell(
            "exact",
            "head -c 8388608 /dev/urandom > /outputs/a; mkdir /outputs/d; i=0; "
            "while [ $i -lt 100 ]; do echo $i > /outputs/d/f$i; i=$((i+1)); done",
            8 * MIB + 100 * 4096,
        ),
        # Far more output than memory: the page cache of the outputs must not count as RSS.
        shell("large", "head -c 134217728 /dev/zero > /outputs/a", 128 * MIB, 16 * MIB),
    )
}


@pytest.fixture
async def make_executor(tmp_path):
    if not can_bound_outputs():
        require_real("root", "bounding /outputs needs root and mkfs.ext4 (e2fsprogs)")
    if not Path("/bin/busybox").is_file():
        require_real("busybox-static", "/bin/busybox missing; scripts/setup installs it")
    try:
        DockerEngine.connect().close()
    except DockerUnavailable as exc:
        require_real("docker", str(exc))
    made = []

    async def make(bound=True):
        root = tmp_path / f"work-{len(made)}"
        root.mkdir()
        executor = await Executor.connect(
            modules=MODULES, workdir_root=root, bound_outputs=bound
        )
        await executor.build_image("busybox")
        made.append((executor, root))
        return executor

    yield make
    for executor, root in made:
        executor.close()
        assert not mounts_under(root), "an outputs filesystem was left mounted"
        assert not list(root.iterdir()), "a job directory was left behind"


def sealed():
    return seal_for(KEY.public_key, JobInputs().encode())


async def test_a_job_writing_past_its_allowance_is_stopped_while_it_runs(make_executor):
    executor = await make_executor()
    with pytest.raises(OutputOverLimit, match="output over limit") as caught:
        await executor.run(JobSpec("fill"), sealed(), KEY, timeout_s=60)
    cause = caught.value.__cause__
    assert isinstance(cause, JobFailed) and cause.exit_code == 3
    written_kib = int(re.search(rb"(\d+)\s+/outputs", cause.log_tail).group(1))
    # The allowance plus ext4's margin, not the 200 MiB the job tried to write.
    assert written_kib * 1024 < 3 * MIB


async def test_a_job_that_ignores_the_full_disk_and_exits_0_is_still_over_limit(make_executor):
    executor = await make_executor()
    with pytest.raises(OutputOverLimit):
        await executor.run(JobSpec("fill-quietly"), sealed(), KEY, timeout_s=60)


async def test_bounded_and_unbounded_outputs_give_the_same_result_hash(make_executor):
    bounded, plain = await make_executor(True), await make_executor(False)
    first = await bounded.run(JobSpec("large"), sealed(), KEY, timeout_s=120)
    second = await plain.run(JobSpec("large"), sealed(), KEY, timeout_s=120)
    assert first.result_cid == second.result_cid
    assert len(first.output_tarball) > 128 * MIB


async def test_a_job_may_write_exactly_its_allowance(make_executor):
    executor = await make_executor()
    result = await executor.run(JobSpec("exact"), sealed(), KEY, timeout_s=60)
    assert len(result.output_tarball) > 8 * MIB


async def test_a_small_allowance_still_holds_thousands_of_empty_files(make_executor):
    executor = await make_executor()
    result = await executor.run(JobSpec("many-files"), sealed(), KEY, timeout_s=120)
    assert result.output_tarball.count(b"d/f2999") == 1


async def test_a_mount_left_by_a_killed_node_is_unmounted_and_wiped(tmp_path, make_executor):
    await make_executor()  # skips without root, busybox or Docker
    root = tmp_path / "crashed-node"
    outputs = root / f"{WORKDIR_PREFIX}killed" / "outputs"
    outputs.mkdir(parents=True)
    mount_bounded_outputs(outputs, MIB)
    (outputs / "partial").write_bytes(b"x" * 1000)
    assert mounts_under(root) == [outputs]
    executor = await Executor.connect(owner="0xcrashed/provider", workdir_root=root)
    executor.close()
    assert mounts_under(root) == []
    assert list(root.iterdir()) == []
    losetup = subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=True)
    assert str(root) not in losetup.stdout, "the loop device was not released"
    assert os.path.isdir(root)


def test_outputs_are_bounded_only_where_the_engine_sees_our_mounts():
    """`ip netns exec` gives a node its own mount namespace: a loop mount there is invisible to
    the Docker engine, which would bind the empty directory beneath it and lose the outputs."""
    import subprocess
    import sys
    import uuid

    from lilypad_p2p.exec._outputs_fs import engine_shares_our_mounts

    assert engine_shares_our_mounts()
    assert not engine_shares_our_mounts("tcp://127.0.0.1:2375")
    namespace = f"lilyprobe-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    try:
        probe = subprocess.run(
            ["ip", "netns", "exec", namespace, sys.executable, "-c",
             "from lilypad_p2p.exec._outputs_fs import can_bound_outputs as c; print(c())"],
            capture_output=True, text=True, check=True, timeout=60,
        )
    finally:
        subprocess.run(["ip", "netns", "del", namespace], check=True)
    assert probe.stdout.strip() == "False"
