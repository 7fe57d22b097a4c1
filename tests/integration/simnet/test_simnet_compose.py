"""`lilypad-simnet export-compose` end to end: a 5-node project from the smoke scenario, built
into an image from the local package (replacing, and removing, the image of an earlier build),
brought up with docker-compose on this engine; one job
submitted through the client's control socket (the homes are bind-mounted at their host paths)
settles on chain; `docker-compose down` leaves no container of the project behind."""

import contextlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lilypad_p2p.control import ControlError, call
from lilypad_p2p.testing import require_anvil, require_docker, require_real

pytestmark = [pytest.mark.docker, pytest.mark.chain, pytest.mark.net, pytest.mark.slow]

SMOKE = Path(__file__).parents[3] / "simnet" / "scenarios" / "smoke.toml"
NODES = 5
BUILD_TIMEOUT_S = 600
UP_TIMEOUT_S = 180
MARKET_TIMEOUT_S = 180
DEAL_TIMEOUT_S = 180
DOWN_TIMEOUT_S = 120
POLL_S = 1.0
FINAL = {"settled", "resolved", "cancelled", "expired"}


def _require_parts() -> None:
    if shutil.which("docker-compose") is None:
        require_real("docker-compose", "apt-get install -y docker-compose (scripts/setup)")
    require_anvil()
    require_docker("the project's services are containers")


def _poll(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(ControlError, OSError):
            value = condition()
            if value:
                return value
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {what}"
        time.sleep(POLL_S)


def _image_id(reference: str) -> str | None:
    found = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", reference],
                           capture_output=True, text=True)
    return found.stdout.strip() if found.returncode == 0 else None


def _tag_a_stale_build(unique: str) -> str:
    """Tag an empty image as the simnet's, as an earlier build of other sources would be;
    its ID."""
    dockerfile = f"FROM scratch\nLABEL org.lilypad-p2p.test=stale-{unique}\n"
    subprocess.run(["docker", "build", "-q", "-t", "lilypad-simnet/node", "-"], input=dockerfile,
                   text=True, check=True, capture_output=True)
    found = _image_id("lilypad-simnet/node")
    assert found is not None
    return found


def test_an_exported_project_runs_a_job_to_settlement(tmp_path):
    _require_parts()
    out = tmp_path / "project"
    subprocess.run([sys.executable, "-m", "simnet.cli", "export-compose", "--scenario",
                    str(SMOKE), "--nodes", str(NODES), "--out", str(out)], check=True)
    services = json.loads((out / "docker-compose.yml").read_text().split("\n", 1)[1])["services"]
    assert set(services) >= {"anvil", "setup"} and len(services) == NODES + 2
    subprocess.run(["docker-compose", "config", "-q"], cwd=out, check=True)
    untagged = _image_id("lilypad-simnet/node")
    replaced = _tag_a_stale_build(tmp_path.name)
    subprocess.run([str(out / "build-image.sh")], cwd=out, check=True, timeout=BUILD_TIMEOUT_S,
                   stdout=subprocess.DEVNULL)
    built = _image_id("lilypad-simnet/node")
    if untagged not in (None, built):  # the stand-in took its tag, so the build could not see it
        subprocess.run(["docker", "image", "rm", untagged], capture_output=True, check=False)
    assert built != replaced
    assert _image_id(replaced) is None, "the build left the image it replaced behind"
    project = f"simnettest{tmp_path.name[-8:].lower().replace('_', '')}"
    compose = ["docker-compose", "-p", project]
    try:
        subprocess.run([*compose, "up", "-d"], cwd=out, check=True, timeout=UP_TIMEOUT_S)
        client = out / "nodes" / "client-1"
        providers = [name for name in services if name.startswith("provider-")]
        addresses = {_poll(lambda n=name: call(out / "nodes" / n, "status")["address"],
                           UP_TIMEOUT_S, f"{name} to answer") for name in providers}
        _poll(lambda: addresses <= {o["owner"] for o in call(client, "offers")},
              MARKET_TIMEOUT_S, "the client to hold every provider's offer")
        key = call(client, "submit", {"module": "hash", "params": {"text": "compose"}})["key"]
        deal = _poll(lambda: (d := call(client, "deal", {"key": key}))["phase"] in FINAL and d,
                     DEAL_TIMEOUT_S, "the deal to end")
        assert deal["phase"] == "settled", deal
        assert deal["provider"] in addresses
    finally:
        subprocess.run([*compose, "down", "-v", "-t", "20"], cwd=out, timeout=DOWN_TIMEOUT_S,
                       check=False)
    left = subprocess.run(["docker", "ps", "-aq", "--filter", f"name={project}_"],
                          capture_output=True, text=True, check=True).stdout.split()
    assert not left, f"containers left behind: {left}"
