"""Images by digest from a real local registry (Debian's docker-registry, pushed with skopeo):
a module's image is pulled and run; a digest mismatch, a missing image and an image over the
size limit are each refused with a clear message, before anything is pulled."""

import contextlib
import hashlib
import http.server
import json
import threading

import docker
import pytest
import trio

from lilypad_p2p.exec import (
    Executor,
    ImageMissing,
    ImageRefused,
    JobInputs,
    ModuleCatalog,
    PullLimits,
    load_definition_text,
    module_id,
    seal_for,
)
from lilypad_p2p.localnet import module_image
from lilypad_p2p.testing import local_registry, require_docker

pytestmark = [pytest.mark.docker, pytest.mark.slow]
MIB = 1024 * 1024


def _definition(image: str) -> str:
    return f"""
name = "say"
image = "{image}"
command = [
  "/bin/sh", "-c", 'cat /etc/lilypad-test > /outputs/said.txt; echo "$1" >> /outputs/said.txt',
  "say", "{{text}}",
]
[resources]
milli_cpu = 250
memory_mb = 32
disk_mb = 4
[params.text]
kind = "str"
"""


def _forget(reference: str) -> None:
    with contextlib.suppress(docker.errors.ImageNotFound):
        docker.from_env().api.remove_image(reference, force=True)


async def _run(executor: Executor, mid: str) -> bytes:
    from nacl.public import PrivateKey

    from lilypad_p2p.exec import JobSpec

    key = PrivateKey.generate()
    sealed = seal_for(key.public_key, JobInputs(files={}, params={"text": "hi"}).encode())
    result = await executor.run(JobSpec(mid), sealed, key, timeout_s=60)
    return result.output_tarball


def test_a_module_image_is_pulled_by_digest_and_runs(tmp_path):
    require_docker("the executor pulls and runs the image")
    archive = module_image(tmp_path, "say-pull", seed=tmp_path.name)
    with local_registry(tmp_path / "registry") as registry:
        digest = registry.push_archive(archive.archive, "team/say", "v1")
        reference = registry.reference("team/say", digest)
        _forget(reference)
        catalog = ModuleCatalog(tmp_path / "modules")
        mid = catalog.add(load_definition_text(_definition(reference)))

        async def main():
            executor = await Executor.connect(modules=catalog, pull_limits=PullLimits(8 * MIB, 60))
            try:
                assert await executor.image_id(mid) == archive.image_id
                return await _run(executor, mid)
            finally:
                executor.close()

        try:
            tarball = trio.run(main)
        finally:
            _forget(reference)
    assert b"say-pull" in tarball and b"hi\n" in tarball


def test_an_image_over_the_size_limit_is_refused_before_any_pull(tmp_path):
    require_docker("the executor would pull the image")
    archive = module_image(tmp_path, "say-big", padding_bytes=3 * MIB, seed=tmp_path.name)
    with local_registry(tmp_path / "registry") as registry:
        reference = registry.reference(
            "team/big", registry.push_archive(archive.archive, "team/big", "v1"))
        catalog = ModuleCatalog()
        mid = catalog.add(load_definition_text(_definition(reference)))

        async def main():
            executor = await Executor.connect(modules=catalog, pull_limits=PullLimits(2 * MIB, 60))
            try:
                with pytest.raises(ImageRefused, match="over this node's limit of 2097152 bytes"):
                    await executor.image_id(mid)
                assert not executor.engine.has_image(reference)
            finally:
                executor.close()

        trio.run(main)


def test_a_digest_the_registry_does_not_have_is_a_clear_pull_failure(tmp_path):
    require_docker("the executor would pull the image")
    with local_registry(tmp_path / "registry") as registry:
        wrong = registry.reference("team/say", "sha256:" + "0" * 64)
        catalog = ModuleCatalog()
        mid = catalog.add(load_definition_text(_definition(wrong)))

        async def main():
            executor = await Executor.connect(modules=catalog)
            try:
                with pytest.raises(ImageMissing, match="answered 404"):
                    await executor.image_id(mid)
            finally:
                executor.close()

        trio.run(main)


class _LyingRegistry(http.server.BaseHTTPRequestHandler):
    """A registry that answers every manifest request with a manifest of another digest."""

    def do_GET(self):
        config = {"size": 1, "digest": "sha256:" + "1" * 64}
        body = json.dumps({"schemaVersion": 2, "config": config, "layers": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_registry_serving_another_manifest_than_the_digest_is_refused(tmp_path):
    require_docker("the executor would pull the image")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _LyingRegistry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    pinned = "sha256:" + hashlib.sha256(b"the manifest the author pushed").hexdigest()
    reference = f"localhost:{server.server_port}/team/say@{pinned}"
    catalog = ModuleCatalog()
    mid = catalog.add(load_definition_text(_definition(reference)))
    assert mid == module_id(catalog[mid])

    async def main():
        executor = await Executor.connect(modules=catalog)
        try:
            with pytest.raises(ImageRefused, match="digest mismatch"):
                await executor.image_id(mid)
            assert not executor.engine.has_image(reference)
        finally:
            executor.close()

    try:
        trio.run(main)
    finally:
        server.shutdown()
