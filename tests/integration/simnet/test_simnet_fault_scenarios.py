"""The simnet's network and spam fault scenarios (issue 8), each run as a user would run it:
every invariant of the scenario holds, and nothing it started is left behind (node processes,
and for the namespaced ones, network namespaces and root-namespace links)."""

import json
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from lilypad_p2p.testing import require_real
from lilypad_p2p.testing._chain import anvil_binary
from simnet._netns import netns_missing

pytestmark = [pytest.mark.net, pytest.mark.chain, pytest.mark.docker, pytest.mark.slow]

SCENARIOS = Path(__file__).parents[3] / "simnet" / "scenarios"
RUN_TIMEOUT_S = 420
# scenario -> the invariants that are its point (besides the market's usual ones)
EXPECTED = {
    "spam": {"spammer_scored_out", "every_job_settled_or_resolved"},
    "nat": {"natted_providers_private_and_relayed", "natted_providers_served_jobs",
            "every_job_settled_or_resolved"},
    "partition": {"partition_held", "each_side_traded_during_partition",
                  "offers_converged_after_heal", "every_deal_ended"},
}
NAMESPACED = {"nat", "partition"}


def _require_parts(name: str) -> None:
    import docker

    if anvil_binary() is None:
        require_real("anvil", "npm ci in contracts/ installs it")
    try:
        docker.from_env().ping()
    except Exception:
        require_real("docker", "providers run the jobs in Docker")
    if name in NAMESPACED and (missing := netns_missing()):
        require_real("network namespaces", missing)


def _namespaces_and_links() -> set[str]:
    spaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return ({line.split()[0] for line in spaces.splitlines() if line.strip()}
            | {line.split(":")[1].strip().split("@")[0] for line in links.splitlines()})


def _node_processes_under(base: Path) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline"])
            if "lilypad_p2p.cli" in (p.info["cmdline"] or [])
            and any(str(base) in part for part in p.info["cmdline"])]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fault_scenario_passes_its_invariants_and_cleans_up(name, tmp_path):
    _require_parts(name)
    before = _namespaces_and_links() if name in NAMESPACED else set()
    out = tmp_path / name
    run = subprocess.run(
        [sys.executable, "-m", "simnet.cli", "up", "--scenario", str(SCENARIOS / f"{name}.toml"),
         "--out", str(out)], capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    report = json.loads((out / "report.json").read_text())
    checks = {c["name"]: c["ok"] for c in report["invariants"]}
    assert EXPECTED[name] <= set(checks) and all(checks.values()), report["invariants"]
    assert not _node_processes_under(out), "node processes outlived the run"
    if name in NAMESPACED:
        left = {n for n in _namespaces_and_links() - before if n.startswith("sn")}
        assert not left, f"namespaces or links left behind: {left}"
