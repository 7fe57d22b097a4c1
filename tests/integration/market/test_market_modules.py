"""User-defined modules through a real market: anvil, node processes, Docker, and a local
registry serving the module's image by digest.

A module added to the client from a file and one added from a git repository at a pinned
commit are matched by a solver to the one provider whose policy accepts their image's
repository, which fetches each definition from the client over `/lilypad/module/1`, checks it
against the ID, pulls the image by digest, runs the job and settles. The other provider (the
default policy: shipped modules only) is never matched with them. An image over the
provider's size limit and one its registry does not have are refused with the reason before
anything is signed.
"""

import contextlib
import json
import subprocess
import tarfile

import docker
import pytest
from typer.testing import CliRunner

from lilypad_p2p.cli import app
from lilypad_p2p.localnet import market_world, module_image
from lilypad_p2p.testing import local_registry, require_anvil, require_docker

pytestmark = [pytest.mark.net, pytest.mark.chain, pytest.mark.docker, pytest.mark.slow]
SETTLED_WITHIN_S = 180.0
FINAL = {"settled", "rejected", "cancelled", "timed_out"}


def _definition(image: str, greeting: str) -> str:
    return f"""
name = "say-{greeting}"
version = "1.0.0"
description = "Writes the image's marker and a greeting."
image = "{image}"
command = [
  "/bin/sh", "-c",
  'cat /etc/lilypad-test > /outputs/said.txt; echo "{greeting} $1" >> /outputs/said.txt',
  "say", "{{text}}",
]
outputs = ["said.txt"]
[resources]
milli_cpu = 250
memory_mb = 32
disk_mb = 4
[params.text]
kind = "str"
"""


def _add(home, source: str) -> str:
    result = CliRunner().invoke(app, ["modules", "add", source, "--home", str(home)])
    assert result.exit_code == 0, result.output
    return result.output.strip()


def _commit(repo, text: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"}
    repo.mkdir(exist_ok=True)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True, env=env)
    (repo / "module.toml").write_text(text)
    subprocess.run(["git", "add", "module.toml"], cwd=repo, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "module"], cwd=repo, check=True, env=env)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, check=True, env=env,
                          capture_output=True, text=True).stdout.strip()


def _said(result_path: str) -> str:
    with tarfile.open(result_path) as archive:
        member = archive.extractfile("said.txt")
        assert member is not None
        return member.read().decode()


def test_user_modules_from_a_file_and_from_git_run_through_the_market_and_settle(tmp_path):
    require_anvil()
    require_docker("the provider pulls and runs the module's image")
    archive = module_image(tmp_path, "say-market", seed=tmp_path.name)
    with local_registry(tmp_path / "registry") as registry, \
            market_world(tmp_path / "world") as world:
        reference = registry.reference(
            "team/say", registry.push_archive(archive.archive, "team/say", "v1"))
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker.from_env().api.remove_image(reference, force=True)
        open_policy = (f'[modules]\nallow_repositories = ["{registry.host}/team/"]\n'
                       "max_image_mb = 64\npull_timeout_s = 60\n")
        accepting = world.start("provider-open", roles=["provider"], config_lines=open_policy)
        boot = [accepting.dial_addr]
        strict = world.start("provider-strict", roles=["provider"], bootstrap=boot)
        world.start("solver", roles=["solver"], bootstrap=boot)
        client = world.start("client", roles=["client"], bootstrap=boot)
        world.wait_until_known(client, [accepting, strict])

        definition_file = tmp_path / "say.toml"
        definition_file.write_text(_definition(reference, "file"))
        from_file = _add(world.base_dir / "client", str(definition_file))
        commit = _commit(tmp_path / "repo", _definition(reference, "git"))
        from_git = _add(world.base_dir / "client", f"git+{tmp_path / 'repo'}@{commit}")
        assert from_file != from_git and from_file.startswith("bafkrei")

        keys = {mid: client.call("submit", {"module": mid, "params": {"text": mid[-6:]}})["key"]
                for mid in (from_file, from_git)}
        for mid, key in keys.items():
            deal = world.wait_for_phase(client, key, FINAL, timeout_s=SETTLED_WITHIN_S)
            assert deal["phase"] == "settled", deal
            greeting = "file" if mid == from_file else "git"
            assert _said(deal["result_path"]) == f"say-market {tmp_path.name}\n" \
                                                 f"{greeting} {mid[-6:]}\n"
        # The accepting provider fetched both definitions from the client and ran both jobs;
        # the strict one was never matched with either.
        fetched = {p.name.removesuffix(".module")
                   for p in (world.base_dir / "provider-open" / "modules").glob("*.module")}
        assert {from_file, from_git} <= fetched
        assert len(accepting.call("deals")) == 2
        assert strict.call("deals") == []


def _refusals(node) -> list[str]:
    reasons = []
    for line in node.log_path.read_text(errors="replace").splitlines():
        if '"deal.refused"' in line:
            reasons.append(json.loads(line).get("reason", ""))
    return reasons


def test_oversized_and_unpullable_images_are_refused_before_any_deal_is_signed(tmp_path):
    require_anvil()
    require_docker("the provider checks the module's image with Docker")
    big = module_image(tmp_path, "say-big", padding_bytes=3 * 2**20, seed=tmp_path.name)
    with local_registry(tmp_path / "registry") as registry, \
            market_world(tmp_path / "world") as world:
        oversized = registry.reference(
            "team/big", registry.push_archive(big.archive, "team/big", "v1"))
        missing = registry.reference("team/gone", "sha256:" + "0" * 64)
        small_limit = (f'[modules]\nallow_repositories = ["{registry.host}/team/"]\n'
                       "max_image_mb = 2\n")
        provider = world.start("provider", roles=["provider"], config_lines=small_limit)
        client = world.start("client", roles=["client"], bootstrap=[provider.dial_addr])
        world.wait_until_known(client, [provider])
        home = world.base_dir / "client"
        definition = tmp_path / "module.toml"
        expected = {}
        for name, reference, reason in (
                ("big", oversized, "over this node's limit of 2097152 bytes"),
                ("gone", missing, "answered 404")):
            definition.write_text(_definition(reference, name))
            module = _add(home, str(definition))
            client.call("submit", {"module": module, "params": {"text": "x"},
                                   "target": provider.status["address"]})
            expected[module] = reason
        world.cluster.wait_until(
            lambda: all(any(reason in r for r in _refusals(provider))
                        for reason in expected.values()),
            timeout_s=60.0, what="the provider to refuse both deals")
        for reason in expected.values():
            assert any(reason in r for r in _refusals(client)), _refusals(client)
        assert provider.call("deals") == []  # nothing was signed
        assert not docker.from_env().api.images(name=f"{registry.host}/team/big")
