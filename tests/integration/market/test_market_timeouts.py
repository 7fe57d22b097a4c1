"""Timeouts with money at stake end on chain by themselves (issue 5): a provider that never
returns a result is claimed against by the client (refund plus the provider's collateral), and
a client that goes silent after the result is claimed against by the provider (paid)."""

import base64

import pytest

from lilypad_p2p.testing import require_anvil, require_docker
from lilypad_p2p.testing._market import market_world

pytestmark = [pytest.mark.net, pytest.mark.chain, pytest.mark.docker, pytest.mark.slow]

SLOW_SCRIPT = b"import time\ntime.sleep(30)\n"
SHORT_SCRIPT = b"import time\ntime.sleep(3)\nopen('/outputs/done', 'w').write('1')\n"
RESULT_DEADLINE_S = 25
PHASE_TIMEOUT_S = 60.0
FINAL = {"settled", "rejected", "cancelled", "timed_out"}


def _require_parts() -> None:
    require_anvil()
    require_docker("needs dockerd and the python module (lilypad-p2p modules build)",
                   image="lilypad-p2p/python:latest")


def _only_deal(node) -> dict:
    deals = node.call("deals")
    assert len(deals) <= 1, deals
    return deals[0] if deals else {"phase": None}


def test_silent_provider_and_silent_client_are_claimed_against(tmp_path):
    _require_parts()
    with market_world(tmp_path) as world:
        vanishing = world.start("vanishing-provider", roles=["provider"])
        patient = world.start("patient-provider", roles=["provider"],
                              bootstrap=[vanishing.dial_addr],
                              config_lines="acceptance_timeout_s = 2\n")
        refunded = world.start("refunded-client", roles=["client"],
                               bootstrap=[vanishing.dial_addr])
        silent = world.start("silent-client", roles=["client"], bootstrap=[vanishing.dial_addr],
                             config_lines="acceptance_window_s = 3\n")
        for client in (refunded, silent):
            world.wait_until_known(client, [vanishing, patient])
        nodes = [vanishing, patient, refunded, silent]
        before = {n.name: world.balance(n.status["address"]) for n in nodes}

        # No result by the deadline: the client claims its refund and the collateral.
        slow = refunded.call("submit", {
            "module": "python", "target": vanishing.status["address"],
            "deadline_s": RESULT_DEADLINE_S,
            "files": {"main.py": base64.b64encode(SLOW_SCRIPT).decode()},
        })["key"]
        world.wait_for_phase(refunded, slow, {"running"}, timeout_s=PHASE_TIMEOUT_S)
        world.cluster.wait_until(lambda: _only_deal(vanishing)["phase"] == "running",
                                 timeout_s=PHASE_TIMEOUT_S, what="the job to start")
        vanishing.kill()

        # The client vanishes while its job runs and never accepts the result: the provider
        # records the result on chain and claims payment when the acceptance window ends.
        quick = silent.call("submit", {
            "module": "python", "target": patient.status["address"],
            "files": {"main.py": base64.b64encode(SHORT_SCRIPT).decode()},
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
