"""The simnet's network, spam and faulty-jobs fault scenarios, each run as a user
would run it: every invariant of the scenario holds, and nothing it started is left behind (node
processes, and for the namespaced ones, network namespaces and root-namespace links)."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lilypad_p2p.localnet import cluster_processes_under
from lilypad_p2p.testing import require_anvil, require_docker, require_real
from simnet._netns import netns_missing

pytestmark = [pytest.mark.net, pytest.mark.chain, pytest.mark.docker, pytest.mark.slow]

SCENARIOS = Path(__file__).parents[3] / "simnet" / "scenarios"
RUN_TIMEOUT_S = 420
# scenario -> the invariants that are its point (besides the market's usual ones)
EXPECTED = {
    "spam": {"spammer_scored_out", "every_job_settled_or_resolved"},
    "faulty-jobs": {"no_honest_provider_lost_collateral", "every_false_failure_claim_slashed",
                    "failed_jobs_paid_as_failure_results", "funds_conserved"},
    "nat": {"natted_providers_private_and_relayed", "natted_providers_served_jobs",
            "every_job_settled_or_resolved"},
    "partition": {"partition_held", "each_side_traded_during_partition",
                  "offers_converged_after_heal", "every_deal_ended"},
}
NAMESPACED = {"nat", "partition"}


def _require_parts(name: str) -> None:
    require_anvil()
    require_docker("providers run the jobs in Docker")
    if name in NAMESPACED and (missing := netns_missing()):
        require_real("network namespaces", missing)


def _of_run(out: Path) -> set[str]:
    """The namespaces and root links of the run writing into `out` (its lab's prefix)."""
    prefix = (out / "netns-prefix").read_text().strip()
    return {name for name in _namespaces_and_links() if name.startswith(prefix)}


def _namespaces_and_links() -> set[str]:
    spaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return ({line.split()[0] for line in spaces.splitlines() if line.strip()}
            | {line.split(":")[1].strip().split("@")[0] for line in links.splitlines()})


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fault_scenario_passes_its_invariants_and_cleans_up(name, tmp_path):
    _require_parts(name)
    out = tmp_path / name
    run = subprocess.run(
        [sys.executable, "-m", "simnet.cli", "up", "--scenario", str(SCENARIOS / f"{name}.toml"),
         "--out", str(out)], capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    report = json.loads((out / "report.json").read_text())
    checks = {c["name"]: c["ok"] for c in report["invariants"]}
    assert EXPECTED[name] <= set(checks) and all(checks.values()), report["invariants"]
    assert not cluster_processes_under(out), "node processes outlived the run"
    if name in NAMESPACED:
        assert not _of_run(out), "namespaces or links left behind"


INTERRUPT_AFTER_TIMEOUT_S = 120
TEARDOWN_TIMEOUT_S = 90
POLL_S = 0.2


def test_sigterm_mid_run_removes_the_namespaces_and_every_node(tmp_path):
    _require_parts("partition")
    out = tmp_path / "interrupted"
    run = subprocess.Popen(
        [sys.executable, "-m", "simnet.cli", "up", "--scenario",
         str(SCENARIOS / "partition.toml"), "--out", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + INTERRUPT_AFTER_TIMEOUT_S
        while not cluster_processes_under(out):  # the first node is up: interrupt now
            assert time.monotonic() < deadline, "no node started"
            assert run.poll() is None, f"simnet exited early with {run.returncode}"
            time.sleep(POLL_S)
        assert _of_run(out), "the run's namespaces are not there"
        run.send_signal(signal.SIGTERM)
        assert run.wait(TEARDOWN_TIMEOUT_S) == 130
        assert not cluster_processes_under(out), "node processes outlived the interrupted run"
        assert not _of_run(out), "namespaces or links left behind"
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
