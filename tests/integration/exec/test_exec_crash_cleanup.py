"""After a crash, a provider's executor removes its own leftovers and nobody else's."""

import contextlib
from pathlib import Path

import docker
import docker.errors
import pytest

from lilypad_p2p.exec import DockerEngine, DockerUnavailable, Executor
from lilypad_p2p.exec._docker import JOB_LABEL, OWNER_LABEL
from lilypad_p2p.exec._executor import WORKDIR_PREFIX
from lilypad_p2p.testing import require_real

pytestmark = pytest.mark.docker


@pytest.fixture
def docker_api():
    try:
        DockerEngine.connect().close()
    except DockerUnavailable as exc:
        require_real("docker", str(exc))
    if not Path("/bin/busybox").is_file():
        require_real("busybox-static", "/bin/busybox missing; scripts/setup installs it")
    client = docker.from_env()
    yield client.api
    client.close()


def left_running(api, image_id, owner):
    """A job container as a killed node leaves it: still running, labelled with its owner."""
    container = api.create_container(
        image_id,
        entrypoint=["/bin/sleep"],
        command=["300"],
        labels={JOB_LABEL: "1", OWNER_LABEL: owner},
        network_disabled=True,
        host_config=api.create_host_config(network_mode="none"),
    )
    api.start(container["Id"])
    return container["Id"]


async def test_connect_cleans_up_after_a_crash_of_the_same_owner_only(tmp_path, docker_api):
    setup = await Executor.connect()
    image_id, _ = await setup.build_image("busybox")
    setup.close()
    ours = left_running(docker_api, image_id, "0xprovider/provider")
    theirs = left_running(docker_api, image_id, "0xsomeone-else/provider")
    workdir_root = tmp_path / "jobs"
    leftover = workdir_root / f"{WORKDIR_PREFIX}crashed"
    (leftover / "inputs").mkdir(parents=True)
    (leftover / "inputs" / "secret.txt").write_text("decrypted input of a killed run")
    unrelated = workdir_root / "not-a-job-dir"
    unrelated.mkdir()
    try:
        executor = await Executor.connect(owner="0xprovider/provider", workdir_root=workdir_root)
        executor.close()
        with pytest.raises(docker.errors.NotFound):
            docker_api.inspect_container(ours)
        assert docker_api.inspect_container(theirs)["State"]["Running"]
        assert not leftover.exists()
        assert unrelated.exists()
    finally:
        for container_id in (ours, theirs):
            with contextlib.suppress(docker.errors.NotFound):
                docker_api.remove_container(container_id, force=True)
