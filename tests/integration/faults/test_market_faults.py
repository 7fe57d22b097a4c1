"""Faults around a real deal (real node processes, real Docker, anvil):

- a second node started on a running provider's home is refused in one line naming its PID
  while the provider's job runs, and leaves its container and job directory alone: the deal
  settles, funds conserved;
- everything the nodes write under their homes (the database's WAL and shared memory too) and
  every `run --output` file is private (0600 files, 0700 directories).
"""

import base64
import os
import stat
import subprocess
import sys

import pytest

from lilypad_p2p.exec._docker import DockerEngine
from lilypad_p2p.localnet import market_world
from lilypad_p2p.testing import require_anvil, require_docker

pytestmark = [pytest.mark.net, pytest.mark.chain, pytest.mark.docker, pytest.mark.slow]
WAIT_S = 90.0
CLI_TIMEOUT_S = 120
SLOW_SCRIPT = b"import time\ntime.sleep(25)\nopen('/outputs/out.txt', 'w').write('slept')\n"
# Written by the test harness, not by the node.
HARNESS_FILES = {"node.log", "config.toml"}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LILYPAD_")}
    return subprocess.run([sys.executable, "-m", "lilypad_p2p.cli", *args], env=env,
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S)


def _not_private(root) -> list[str]:
    loose = []
    for path in root.rglob("*"):
        if path.name in HARNESS_FILES or path.is_symlink():
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            loose.append(f"{path.relative_to(root)} {oct(mode)}")
    return loose


def test_second_node_leaves_a_running_job_alone_and_files_are_private(tmp_path):
    require_anvil()
    require_docker("the python module", image="lilypad-p2p/python:latest")
    with market_world(tmp_path) as world:
        provider = world.start("provider", roles=["provider"])
        client = world.start("client", roles=["client"], bootstrap=[provider.dial_addr])
        world.wait_until_known(client, [provider])
        target, payer = provider.status["address"], client.status["address"]
        before = world.balance(target) + world.balance(payer)

        key = client.call("submit", {
            "module": "python", "target": target,
            "files": {"main.py": base64.b64encode(SLOW_SCRIPT).decode()},
        })["key"]
        world.cluster.wait_until(
            lambda: [d["phase"] for d in provider.call("deals")] == ["running"],
            timeout_s=WAIT_S, what="the provider to start the job")
        owner = f"{target}/provider"
        engine = DockerEngine.connect()
        world.cluster.wait_until(lambda: bool(engine.job_containers(owner)), timeout_s=WAIT_S,
                                 what="the job's container")
        containers = engine.job_containers(owner)
        job_dirs = sorted((provider.home / "jobs" / "provider").iterdir())
        assert job_dirs

        second = _cli("node", "--provider", "--home", str(provider.home),
                      "--listen", "/ip4/127.0.0.1/tcp/0")
        assert second.returncode == 2
        assert second.stderr.strip().splitlines() == [
            f"error: another node (PID {provider.process.pid}) is running with home "
            f"{provider.home}: stop it first, or pass another --home"]
        # Still the same run: the refused node removed no container and wiped no job dir.
        assert [d["phase"] for d in provider.call("deals")] == ["running"]
        assert engine.job_containers(owner) == containers
        assert sorted((provider.home / "jobs" / "provider").iterdir()) == job_dirs

        settled = world.wait_for_phase(client, key, {"settled", "cancelled", "timed_out"},
                                       timeout_s=WAIT_S)
        assert settled["phase"] == "settled", settled
        assert world.balance(target) + world.balance(payer) == before

        out = tmp_path / "out"
        ran = _cli("run", "hash", "-i", "text=private", "--target", target,
                   "--output", str(out), "--home", str(client.home))
        assert ran.returncode == 0, ran.stderr
        assert stat.S_IMODE(out.stat().st_mode) == 0o700
        assert stat.S_IMODE((out / "digest.txt").stat().st_mode) == 0o600
        for node in (client, provider):
            assert (node.home / "node.sqlite-wal").exists()
            assert _not_private(node.home) == [], node.name
        engine.close()
