"""Crash and resume: the provider is killed while it runs a job, the client right
after it received a result; both restart from their databases and every deal still settles,
paid once, with the right outputs."""

import base64
import tarfile

import pytest

from lilypad_p2p.localnet import market_world
from lilypad_p2p.testing import require_anvil, require_docker

pytestmark = [pytest.mark.net, pytest.mark.chain, pytest.mark.docker, pytest.mark.slow]

SLOW_SCRIPT = b"import time\ntime.sleep(4)\nopen('/outputs/out.txt', 'w').write('slept')\n"
PHASE_TIMEOUT_S = 90.0
FINAL = {"settled", "rejected", "cancelled", "timed_out"}


def _require_parts() -> None:
    require_anvil()
    require_docker("needs dockerd and the python module (lilypad-p2p modules build)",
                   image="lilypad-p2p/python:latest")


def _provider_phase(world, provider, deal_id: str) -> str | None:
    for deal in provider.call("deals"):
        if deal["deal_id"] == deal_id:
            return deal["phase"]
    return None


def test_killed_provider_and_client_resume_every_deal_to_settlement(tmp_path):
    _require_parts()
    with market_world(tmp_path) as world:
        provider = world.start("provider", roles=["provider"])
        client = world.start("client", roles=["client"], bootstrap=[provider.dial_addr])
        world.wait_until_known(client, [provider])
        target = provider.status["address"]
        before = world.balance(target)

        # 1. The provider dies while the job's container runs; it restarts and runs it again.
        slow = client.call("submit", {
            "module": "python", "target": target,
            "files": {"main.py": base64.b64encode(SLOW_SCRIPT).decode()},
        })["key"]
        deal = world.wait_for_phase(client, slow, {"running"}, timeout_s=PHASE_TIMEOUT_S)
        world.cluster.wait_until(
            lambda: _provider_phase(world, provider, deal["deal_id"]) == "running",
            timeout_s=PHASE_TIMEOUT_S, what="the provider to start the job")
        provider.kill()
        provider = world.restart(provider, roles=["provider"], bootstrap=[client.dial_addr])
        settled = world.wait_for_phase(client, slow, FINAL, timeout_s=PHASE_TIMEOUT_S)
        assert settled["phase"] == "settled", settled
        with tarfile.open(settled["result_path"]) as archive:
            assert archive.extractfile("out.txt").read() == b"slept"

        # 2. The client dies once the provider has sent the result; it restarts and accepts.
        quick = client.call("submit", {"module": "hash", "params": {"text": "crash"},
                                       "target": target})["key"]
        deal = world.wait_for_phase(client, quick, {"running", *FINAL},
                                    timeout_s=PHASE_TIMEOUT_S)
        world.cluster.wait_until(
            lambda: _provider_phase(world, provider, deal["deal_id"]) in (
                "result_ready", "accepted", "settled"),
            timeout_s=PHASE_TIMEOUT_S, what="the provider to send the result")
        client.kill()
        client = world.restart(client, roles=["client"], bootstrap=[provider.dial_addr])
        settled = world.wait_for_phase(client, quick, FINAL, timeout_s=PHASE_TIMEOUT_S)
        assert settled["phase"] == "settled", settled

        # Nothing lost, nothing paid twice: both deals settled on the provider's side too,
        # and it earned exactly two payments.
        world.cluster.wait_until(
            lambda: [d["phase"] for d in provider.call("deals")] == ["settled", "settled"],
            timeout_s=PHASE_TIMEOUT_S, what="the provider to record both deals settled")
        payments = sum(d["payment_wei"] for d in provider.call("deals"))
        assert world.balance(target) - before == payments
        # The restarted client resumed from its database: both deals' histories are whole.
        phases = [t["to"] for t in client.call("deal", {"key": quick})["transitions"]]
        assert phases[0] == "offered" and phases[-1] == "settled"
