"""Failure results with real node processes, Docker and anvil.

A user module (`fail-probe`: a shell script parameter on the shipped busybox recipe, 16 MB of
memory, 1 MB of outputs, 4 s at most) makes jobs fail the four ways a job can fail by itself:
exit 1, out of memory, past its maximum run time, over its output allowance. The honest
provider commits each failure as its result; a client that accepts results accepts them and the
provider is paid its price and keeps its collateral. A client that spot-checks every result
(`check_rate = 1`) has another honest failure checked, which the consortium reproduces off chain
(PROVIDER_CORRECT: accepted, its fee paid in a batch), and a job whose provider claims a failure
it did not have (`cheat_false_failure`), which the consortium rules wrong, on chain: that
provider loses its collateral.
Funds are conserved across everyone, the mediators' fees included.
"""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lilypad_p2p.cli import app
from lilypad_p2p.localnet import market_world, node_identity, start_trusting_node
from lilypad_p2p.roles._failure import FailureReport
from lilypad_p2p.roles._terms import MEDIATION_WINDOW_S
from lilypad_p2p.testing import advance_chain_time, require_anvil, require_docker

pytestmark = [pytest.mark.net, pytest.mark.chain, pytest.mark.docker, pytest.mark.slow]

ENDED_WITHIN_S = 240.0
FINAL = {"resolved", "settled", "rejected", "cancelled", "timed_out"}
MEDIATORS = 3
PRICE_WEI = 10**15  # roles._resource_offer.DEFAULT_PRICE_PER_JOB_WEI
COLLATERAL_WEI = 2 * 10**15
FEE_WEI = 10**14  # NodeConfig.mediation_fee_wei
ANY_MODULE = "[modules]\nallow_any = true\n"

PROBE = """
name = "fail-probe"
version = "1.0.0"
description = "Runs its script parameter (failure-result tests)."
image = "recipe:busybox"
command = ["/bin/sh", "-c", 'eval "$1"', "probe", "{script}"]
max_run_time_s = 4

[resources]
milli_cpu = 250
memory_mb = 16
disk_mb = 1

[params.script]
kind = "str"
max_length = 4096
"""

# script -> the failure the provider reports
FAILING = {
    "echo about to fail >&2; exit 1": ("exit", 1),
    'x=$(head -c 64000000 /dev/zero | tr "\\0" a); echo ${#x}': ("out_of_memory", None),
    "sleep 30": ("timeout", None),
    "head -c 3000000 /dev/zero > /outputs/big": ("output_over_limit", None),
}


def _add_module(home: Path, definition: Path) -> str:
    result = CliRunner().invoke(app, ["modules", "add", str(definition), "--home", str(home)])
    assert result.exit_code == 0, result.output
    return result.output.strip()


def test_failed_jobs_pay_the_honest_provider_and_false_claims_are_slashed(tmp_path):
    require_anvil()
    require_docker("providers and mediators run the failing jobs in Docker")
    definition = tmp_path / "probe.toml"
    definition.write_text(PROBE)
    with market_world(tmp_path / "world") as world:
        mediator_names = [f"mediator-{i}" for i in range(MEDIATORS)]
        trusted = [node_identity(world, name).address for name in mediator_names]
        honest = start_trusting_node(world, "honest", roles=["provider"], trusted=trusted,
                                     config_lines=ANY_MODULE)
        boot = [honest.dial_addr]
        cheat = start_trusting_node(world, "cheat", roles=["provider"], trusted=trusted,
                                    bootstrap=boot,
                                    config_lines="cheat_false_failure = true\n" + ANY_MODULE)
        for name in mediator_names:
            start_trusting_node(world, name, roles=["mediator"], trusted=trusted, bootstrap=boot)
        consortium = f"consortium_size = {MEDIATORS}\nconsortium_threshold = 2\n"
        accepting = start_trusting_node(world, "accepting", roles=["client"], trusted=trusted,
                                        bootstrap=boot, config_lines=consortium)
        checking = start_trusting_node(world, "checking", roles=["client"], trusted=trusted,
                                       bootstrap=boot,
                                       config_lines="check_rate = 1.0\n" + consortium)
        probe = {c.name: _add_module(world.base_dir / c.name, definition)
                 for c in (accepting, checking)}
        assert probe["accepting"] == probe["checking"]
        module = probe["accepting"]
        for client in (accepting, checking):
            world.wait_until_known(client, [honest, cheat])
            world.cluster.wait_until(
                lambda c=client: c.holds_records(trusted),
                timeout_s=60.0, what=f"{client.name} to know every mediator")
        addresses = {n.name: n.status["address"]
                     for n in (honest, cheat, accepting, checking)}
        addresses.update(zip(mediator_names, trusted, strict=True))
        before = {name: world.balance(a) for name, a in addresses.items()}

        def submit(client, script: str, provider: str) -> str:
            return client.call("submit", {"module": module, "params": {"script": script},
                                          "target": addresses[provider]})["key"]

        accepted = {script: submit(accepting, script, "honest") for script in FAILING}
        upheld = submit(checking, "exit 1", "honest")
        false_claim = submit(checking, "echo fine > /outputs/ok", "cheat")

        for script, key in accepted.items():
            deal = world.wait_for_phase(accepting, key, FINAL, timeout_s=ENDED_WITHIN_S)
            failure, exit_code = FAILING[script]
            assert (deal["phase"], deal["failure"]) == ("settled", failure), deal
            report = json.loads(Path(deal["result_path"]).read_text())
            assert report["failure"] == failure
            assert report.get("failure_exit_code") == exit_code
            assert report["run_time_limit_s"] == 4
            if failure == "exit":
                assert Path(report["logs_path"]).read_bytes() == b"about to fail\n"
            # The provider's signed report itself, as it came down the result stream.
            signed = FailureReport.decode(
                Path(deal["result_path"]).with_name(f"{key}.failure-report").read_bytes())
            assert signed.signer().lower() == addresses["honest"].lower()
        deal = world.wait_for_phase(checking, upheld, FINAL, timeout_s=ENDED_WITHIN_S)
        # Checked off chain: the consortium reproduced the failure, so it settles unchallenged.
        assert (deal["phase"], deal["check_outcome"], deal["failure"]) == (
            "settled", "PROVIDER_CORRECT", "exit"), deal
        deal = world.wait_for_phase(checking, false_claim, FINAL, timeout_s=ENDED_WITHIN_S)
        assert (deal["phase"], deal["outcome"]) == ("resolved", "PROVIDER_WRONG"), deal

        # The honest provider: paid five prices, every collateral back, nothing locked.
        world.cluster.wait_until(
            lambda: world.balance(addresses["honest"]) - before["honest"] == 5 * PRICE_WEI,
            timeout_s=60.0, what="the honest provider's five failure results to settle")
        reader = world.settlement(node_identity(world, "accepting"))
        assert reader.balance(addresses["honest"]).locked == 0
        # The false claim cost the cheat its collateral, which went to the job creator.
        assert before["cheat"] - world.balance(addresses["cheat"]) == COLLATERAL_WEI
        assert before["accepting"] - world.balance(addresses["accepting"]) == 4 * PRICE_WEI
        # The mediators claim their fees once the late-signature window closes; then every
        # wei is accounted for.
        advance_chain_time(reader.chain, MEDIATION_WINDOW_S + 1)

        def fees() -> int:
            return sum(world.balance(addresses[m]) - before[m] for m in mediator_names)

        world.cluster.wait_until(lambda: fees() == 2 * FEE_WEI, timeout_s=90.0,
                                 what="the mediators to claim both fees")
        after = {name: world.balance(a) for name, a in addresses.items()}
        # Checking client: paid one price and two fees (the agreeing check's in its batched
        # payFees), gained the cheat's collateral.
        assert after["checking"] - before["checking"] == (
            COLLATERAL_WEI - PRICE_WEI - 2 * FEE_WEI)
        assert sum(after.values()) == sum(before.values())
