"""The local devnet, driven exactly as the README's "Try it: a local network" tells a newcomer:
start it, add the example module, run a job, read the output, stop it; then up again in the same
directory, this time with no Docker engine to reach (real processes: the `lilypad-p2p` command,
anvil, node processes, Docker)."""

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
DEGRADED_WITHIN_S = 30


def _newcomer_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LILYPAD_")}
    env["LILYPAD_DEVNET_DIR"] = str(tmp_path / "devnet")
    return env


def _cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lilypad_p2p.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)


def test_the_devnet_as_the_readme_tells_it_then_up_again_without_docker(tmp_path):
    require_anvil()
    require_docker("the devnet's providers run jobs in Docker", image="lilypad-p2p/busybox")
    env = _newcomer_env(tmp_path)

    def sh(*args: str) -> subprocess.CompletedProcess[str]:
        done = _cli(env, tmp_path, *args)
        assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
        return done

    up = sh("devnet", "up")
    try:
        assert up.stderr == "", up.stderr  # nothing to warn of: not the homes' plaintext keys
        env["LILYPAD_HOME"] = sh("devnet", "status", "--client-home").stdout.strip()
        # A mediator node runs, registered on the contract, so a dispute gets its verdicts.
        mediator_log = tmp_path / "devnet" / "homes" / "mediator" / "node.log"
        assert '"event":"mediator.registered"' in mediator_log.read_text()
        # No hand configuration: the client names no mediator and takes its providers'.
        assert "mediators = []" in (Path(env["LILYPAD_HOME"]) / "config.toml").read_text()
        module_id = sh("modules", "add",
                       str(REPO / "examples/modules/hello/module.toml")).stdout.strip()
        (tmp_path / "input.txt").write_text("one two three four\n")
        ran = sh("run", module_id, "-i", "name=newcomer", "--file", "input.txt",
                 "--output", "out/")
        assert "verified" in ran.stdout
        assert (tmp_path / "out" / "greeting.txt").read_text() == "Hello, newcomer!\n"
        assert (tmp_path / "out" / "words.txt").read_text().strip() == "4"
        # A job that fails by itself is a result too: the run ends non-zero, with its logs.
        (tmp_path / "fail.py").write_text('raise SystemExit("bad input, by design")\n')
        failed = _cli(env, tmp_path, "run", "python", "-i", "script=fail.py", "--file",
                      "fail.py", "--output", "failed/")
        assert failed.returncode != 0 and "Traceback" not in failed.stderr, failed.stderr
        assert "the job failed on the provider (exit)" in failed.stderr, failed.stderr
        assert "the job's logs end:\n  | bad input, by design\n" in failed.stderr
        logs = failed.stderr.strip().rpartition("its logs: ")[2]
        assert Path(logs).read_text() == "bad input, by design\n"
        assert "provider-1" in sh("devnet", "status").stdout
    finally:
        stopped = sh("devnet", "down").stdout
    assert "devnet down" in stopped
    assert "no devnet" in _cli(env, tmp_path, "devnet", "status").stderr

    # Up again in the same directory, with no engine to reach: a new chain, so new homes, funded
    # again; the devnet says the providers cannot run jobs, and shows them degraded.
    del env["LILYPAD_HOME"]
    env["DOCKER_HOST"] = f"unix://{tmp_path / 'no-engine.sock'}"  # nothing listens there
    up = sh("devnet", "up")
    try:
        assert "warning: the providers cannot run jobs until Docker answers" in up.stderr
        assert "bash scripts/ensure-docker" in up.stderr
        client_home = sh("devnet", "status", "--client-home").stdout.strip()
        balance = sh("balance", "--home", client_home, "--json").stdout
        assert json.loads(balance)["free_wei"] > 0, balance
        deadline = time.monotonic() + DEGRADED_WITHIN_S
        while (shown := sh("devnet", "status").stdout).count("degraded: docker_unreachable") < 2:
            assert time.monotonic() < deadline, f"providers not shown degraded:\n{shown}"
            time.sleep(0.5)
        home = tmp_path / "devnet" / "homes" / "provider-1"
        assert f"LILYPAD_HOME={home} lilypad-p2p status says why" in shown
        said = sh("status", "--home", str(home)).stdout
        assert "check DOCKER_HOST if the engine is remote" in said  # the advice, whole
    finally:
        sh("devnet", "down")


def test_up_leaves_a_homes_folder_it_did_not_make_alone(tmp_path):
    require_anvil()
    env = _newcomer_env(tmp_path)
    foreign = tmp_path / "devnet" / "homes"
    foreign.mkdir(parents=True)
    (foreign / "mine.txt").write_text("not the devnet's")
    refused = _cli(env, tmp_path, "devnet", "up")
    assert refused.returncode != 0 and "no devnet made it" in refused.stderr
    assert (foreign / "mine.txt").read_text() == "not the devnet's"
