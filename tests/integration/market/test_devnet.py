"""The local devnet, driven exactly as the README's "Try it: a local network" tells a newcomer:
start it, add the example module, run a job, read the output, stop it (real processes: the
`lilypad-p2p` command, anvil, node processes, Docker)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lilypad_p2p.testing import require_anvil, require_docker

pytestmark = [pytest.mark.net, pytest.mark.chain, pytest.mark.docker, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[3]
COMMAND_TIMEOUT_S = 300


def test_the_devnet_as_the_readme_tells_it(tmp_path):
    require_anvil()
    require_docker("the devnet's providers run jobs in Docker", image="lilypad-p2p/busybox")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LILYPAD_")}
    env["LILYPAD_DEVNET_DIR"] = str(tmp_path / "devnet")

    def sh(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "lilypad_p2p.cli", *args], env=env,
                              cwd=tmp_path, capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT_S)
        assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
        return done.stdout

    sh("devnet", "up")
    try:
        env["LILYPAD_HOME"] = sh("devnet", "status", "--client-home").strip()
        # No hand configuration: the client names no mediator and takes its providers'.
        assert "mediators = []" in (Path(env["LILYPAD_HOME"]) / "config.toml").read_text()
        module_id = sh("modules", "add", str(REPO / "examples/modules/hello/module.toml")).strip()
        (tmp_path / "input.txt").write_text("one two three four\n")
        ran = sh("run", module_id, "-i", "name=newcomer", "--file", "input.txt",
                 "--output", "out/")
        assert "verified" in ran
        assert (tmp_path / "out" / "greeting.txt").read_text() == "Hello, newcomer!\n"
        assert (tmp_path / "out" / "words.txt").read_text().strip() == "4"
        # A job that fails by itself is a result too: the run ends non-zero, with its logs.
        (tmp_path / "fail.py").write_text('raise SystemExit("bad input, by design")\n')
        failed = subprocess.run(
            [sys.executable, "-m", "lilypad_p2p.cli", "run", "python", "-i", "script=fail.py",
             "--file", "fail.py", "--output", "failed/"], env=env, cwd=tmp_path,
            capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
        assert failed.returncode != 0 and "Traceback" not in failed.stderr, failed.stderr
        assert "the job failed on the provider (exit)" in failed.stderr, failed.stderr
        logs = failed.stderr.strip().rpartition("its logs: ")[2]
        assert Path(logs).read_text() == "bad input, by design\n"
        assert "provider-1" in sh("devnet", "status")
    finally:
        stopped = sh("devnet", "down")
    assert "devnet down" in stopped
    assert "no devnet" in subprocess.run(
        [sys.executable, "-m", "lilypad_p2p.cli", "devnet", "status"], env=env,
        capture_output=True, text=True).stderr


DEGRADED_WITHIN_S = 30


def test_without_docker_the_devnet_says_so_and_each_up_starts_afresh(tmp_path):
    require_anvil()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LILYPAD_")}
    env["LILYPAD_DEVNET_DIR"] = str(tmp_path / "devnet")
    env["DOCKER_HOST"] = f"unix://{tmp_path / 'no-engine.sock'}"  # nothing listens there

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "lilypad_p2p.cli", *args], env=env,
                              cwd=tmp_path, capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT_S)
        assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
        return done

    foreign = tmp_path / "elsewhere" / "homes"
    foreign.mkdir(parents=True)
    (foreign / "mine.txt").write_text("not the devnet's")
    refused = subprocess.run([sys.executable, "-m", "lilypad_p2p.cli", "devnet", "up", "--dir",
                              str(foreign.parent)], env=env, capture_output=True, text=True,
                             timeout=COMMAND_TIMEOUT_S)
    assert refused.returncode != 0 and "no devnet made it" in refused.stderr
    assert (foreign / "mine.txt").read_text() == "not the devnet's"

    up = cli("devnet", "up")
    try:
        assert "warning: the providers cannot run jobs until Docker answers" in up.stderr
        assert "bash scripts/ensure-docker" in up.stderr
        deadline = time.monotonic() + DEGRADED_WITHIN_S
        while (shown := cli("devnet", "status").stdout).count("degraded: docker_unreachable") < 2:
            assert time.monotonic() < deadline, f"providers not shown degraded:\n{shown}"
            time.sleep(0.5)
        home = tmp_path / "devnet" / "homes" / "provider-1"
        assert f"LILYPAD_HOME={home} lilypad-p2p status says why" in shown
        said = subprocess.run([sys.executable, "-m", "lilypad_p2p.cli", "status", "--home",
                               str(home)], env=env, capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT_S).stdout
        assert "check DOCKER_HOST if the engine is remote" in said  # the advice, whole
    finally:
        cli("devnet", "down")
    # Up again in the same directory: a new chain, so new homes, funded and deposited again.
    cli("devnet", "up")
    try:
        client_home = cli("devnet", "status", "--client-home").stdout.strip()
        balance = subprocess.run([sys.executable, "-m", "lilypad_p2p.cli", "balance", "--home",
                                  client_home, "--json"], env=env, capture_output=True,
                                 text=True, timeout=COMMAND_TIMEOUT_S)
        assert json.loads(balance.stdout)["free_wei"] > 0, balance.stdout + balance.stderr
    finally:
        cli("devnet", "down")
