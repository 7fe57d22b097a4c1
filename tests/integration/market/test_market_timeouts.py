"""Timeouts with money at stake end on chain by themselves: a provider that never returns a
result is claimed against by the client (refund plus the provider's collateral), and a client
that goes silent after the result is claimed against by the provider (paid).

The jobs run a user module with a 10 s maximum run time, so the shortest deadline providers
sign (the module's maximum plus the time to start and answer) keeps the test short."""

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lilypad_p2p.cli import app
from lilypad_p2p.exec import DockerEngine
from lilypad_p2p.exec._outputs_fs import mounts_under
from lilypad_p2p.localnet import market_world
from lilypad_p2p.roles._client_submission import MATCH_ALLOWANCE_S
from lilypad_p2p.roles._terms import required_deal_time_s
from lilypad_p2p.testing import require_anvil, require_docker

pytestmark = [pytest.mark.net, pytest.mark.chain, pytest.mark.docker, pytest.mark.slow]

MAX_RUN_TIME_S = 10
SLEEPER = f"""
name = "sleeper"
version = "1.0.0"
description = "Sleeps, then writes /outputs/done (timeout tests)."
image = "recipe:busybox"
command = ["/bin/sh", "-c", 'sleep "$1" && echo 1 > /outputs/done', "sleeper", "{{seconds}}"]
max_run_time_s = {MAX_RUN_TIME_S}

[resources]
milli_cpu = 250
memory_mb = 16
disk_mb = 1

[params.seconds]
kind = "int"
minimum = 1
maximum = {MAX_RUN_TIME_S}
"""
ANY_MODULE = "[modules]\nallow_any = true\n"
# The shortest deadline a client may post for the sleeper.
RESULT_DEADLINE_S = required_deal_time_s(MAX_RUN_TIME_S) + MATCH_ALLOWANCE_S
PHASE_TIMEOUT_S = RESULT_DEADLINE_S + 40.0
FINAL = {"settled", "rejected", "cancelled", "timed_out"}


def _require_parts() -> None:
    require_anvil()
    require_docker("providers run the sleeper module in Docker")


def _add_sleeper(home: Path, definition: Path) -> str:
    result = CliRunner().invoke(app, ["modules", "add", str(definition), "--home", str(home)])
    assert result.exit_code == 0, result.output
    return result.output.strip()


def _only_deal(node) -> dict:
    deals = node.call("deals")
    assert len(deals) <= 1, deals
    return deals[0] if deals else {"phase": None}


def test_silent_provider_and_silent_client_are_claimed_against(tmp_path):
    _require_parts()
    with market_world(tmp_path) as world:
        vanishing = world.start("vanishing-provider", roles=["provider"],
                                config_lines=ANY_MODULE)
        patient = world.start("patient-provider", roles=["provider"],
                              bootstrap=[vanishing.dial_addr],
                              config_lines="acceptance_timeout_s = 2\n" + ANY_MODULE)
        refunded = world.start("refunded-client", roles=["client"],
                               bootstrap=[vanishing.dial_addr])
        silent = world.start("silent-client", roles=["client"], bootstrap=[vanishing.dial_addr],
                             config_lines="acceptance_window_s = 3\n")
        definition = tmp_path / "sleeper.toml"
        definition.write_text(SLEEPER)
        for client in (refunded, silent):
            world.wait_until_known(client, [vanishing, patient])
            module = _add_sleeper(world.base_dir / client.name, definition)
        nodes = [vanishing, patient, refunded, silent]
        before = {n.name: world.balance(n.status["address"]) for n in nodes}

        # No result by the deadline: the client claims its refund and the collateral.
        slow = refunded.call("submit", {
            "module": module, "target": vanishing.status["address"],
            "deadline_s": RESULT_DEADLINE_S, "params": {"seconds": MAX_RUN_TIME_S},
        })["key"]
        world.wait_for_phase(refunded, slow, {"running"}, timeout_s=PHASE_TIMEOUT_S)
        world.cluster.wait_until(lambda: _only_deal(vanishing)["phase"] == "running",
                                 timeout_s=PHASE_TIMEOUT_S, what="the job to start")
        # "running" is recorded before the container is made: kill the provider once it is.
        owner = f"{vanishing.status['address']}/provider"
        engine = DockerEngine.connect()
        world.cluster.wait_until(lambda: bool(engine.job_containers(owner)),
                                 timeout_s=PHASE_TIMEOUT_S, what="the job's container")
        vanishing.kill()

        # The client vanishes while its job runs and never accepts the result: the provider
        # records the result on chain and claims payment when the acceptance window ends.
        quick = silent.call("submit", {
            "module": module, "target": patient.status["address"], "params": {"seconds": 3},
        })["key"]
        world.cluster.wait_until(lambda: _only_deal(patient)["phase"] == "running",
                                 timeout_s=PHASE_TIMEOUT_S, what="the job to start")
        silent.kill()

        refund = world.wait_for_phase(refunded, slow, FINAL, timeout_s=PHASE_TIMEOUT_S)
        assert refund["phase"] == "timed_out", refund
        world.cluster.wait_until(lambda: _only_deal(patient)["phase"] in FINAL,
                                 timeout_s=PHASE_TIMEOUT_S, what="the provider's claim")
        paid = _only_deal(patient)
        assert paid["phase"] == "timed_out", paid
        assert [t["to"] for t in paid["transitions"]][-3:] == [
            "result_ready", "result_submitted", "timed_out"]

        after = {n.name: world.balance(n.status["address"]) for n in nodes}
        collateral = 2 * 10**15  # the providers' default collateral per deal
        assert after["refunded-client"] - before["refunded-client"] == collateral
        assert before["vanishing-provider"] - after["vanishing-provider"] == collateral
        assert after["patient-provider"] - before["patient-provider"] == paid["payment_wei"]
        assert before["silent-client"] - after["silent-client"] == paid["payment_wei"]
        assert quick  # the silent client's deal key was issued before it died

        # Killed mid-job, the provider left its job's container and, as root, the loop-mounted
        # outputs filesystem; restarted, it removes both before it serves again.
        home = world.base_dir / "vanishing-provider"
        try:
            assert engine.job_containers(owner)
            if os.geteuid() == 0:
                assert mounts_under(home)
            world.restart(vanishing, roles=["provider"], bootstrap=[patient.dial_addr])
            assert not engine.job_containers(owner)
            assert not mounts_under(home)
        finally:
            engine.close()
