"""Mediation with real node processes, Docker and anvil.

Five trusted mediators, of which one never comes online and one lies; two providers (one
commits to wrong outputs); one client that spot-checks every job (`check_rate = 1`) with
consortia of 5 and k = 3. One world
serves three jobs. Spot checks are asked off chain first: the cheat's job is ruled
`PROVIDER_WRONG` and disputed on chain (collateral slashed, mediators paid by the contract); a
good job's check agrees (`PROVIDER_CORRECT`) and a `random` job's check finds it
`NON_DETERMINISTIC`: both are accepted and settle like unchecked deals, the provider is paid, and
the client pays the signers' fee shares for both in one `payFees` transaction.
"""

import subprocess
import sys

import pytest

from lilypad_p2p.localnet import market_world, node_identity, start_trusting_node
from lilypad_p2p.roles._terms import MEDIATION_WINDOW_S
from lilypad_p2p.testing import advance_chain_time, require_anvil, require_docker

pytestmark = [pytest.mark.net, pytest.mark.chain, pytest.mark.docker, pytest.mark.slow]

RESOLVED_WITHIN_S = 180.0
PROVIDER_LEARNS_WITHIN_S = 90.0
MEDIATORS = 5
OFFLINE = 1  # the last trusted mediator never starts
FINAL = {"resolved", "settled", "rejected", "cancelled", "timed_out"}
COLLATERAL_WEI = 2 * 10**15  # roles._resource_offer.DEFAULT_COLLATERAL_WEI
PRICE_WEI = 10**15
FEE_WEI = 10**14  # NodeConfig.mediation_fee_wei


def _require_parts() -> None:
    require_anvil()
    require_docker("providers and mediators run jobs in Docker")


def _free(world, address: str) -> int:
    return world.settlement(node_identity(world, "client")).balance(address).free


def test_spot_checked_jobs_resolve_by_verdict(tmp_path):
    _require_parts()
    with market_world(tmp_path) as world:
        mediator_names = [f"mediator-{i}" for i in range(MEDIATORS)]
        trusted = [node_identity(world, name).address for name in mediator_names]
        honest = start_trusting_node(world, "honest", roles=["provider"], trusted=trusted)
        boot = [honest.dial_addr]
        cheat = start_trusting_node(world, "cheat", roles=["provider"], trusted=trusted,
                                    bootstrap=boot, config_lines="cheat_wrong_output = true")
        for i, name in enumerate(mediator_names[:-OFFLINE]):
            start_trusting_node(world, name, roles=["mediator"], trusted=trusted, bootstrap=boot,
                                config_lines="mediator_lies = true" if i == 0 else "")
        client = start_trusting_node(world, "client", roles=["client"], trusted=trusted,
                                     bootstrap=boot, config_lines=f"check_rate = 1.0\n"
                                     f"consortium_size = {MEDIATORS}\nconsortium_threshold = 3")
        world.wait_until_known(client, [honest, cheat])
        world.cluster.wait_until(  # NodeRecords carry the mediators' sealing keys
            lambda: client.holds_records(trusted[:-OFFLINE]), timeout_s=60.0,
            what="the client to know every mediator")
        addresses = {n.name: n.status["address"] for n in [honest, cheat, client]}
        addresses.update(zip(mediator_names, trusted, strict=True))
        before = {name: _free(world, a) for name, a in addresses.items()}

        jobs = {
            "cheated": ("hash", {"text": "cheat"}, addresses["cheat"]),
            "greedy": ("hash", {"text": "fine"}, addresses["honest"]),
            "random": ("random", {"size": 16}, addresses["honest"]),
        }
        keys = {
            name: client.call("submit", {"module": module, "params": params, "target": target})
            ["key"] for name, (module, params, target) in jobs.items()
        }
        deals = {name: world.wait_for_phase(client, key, FINAL, timeout_s=RESOLVED_WITHIN_S)
                 for name, key in keys.items()}
        assert {name: (d["phase"], d["outcome"] or d["check_outcome"])
                for name, d in deals.items()} == {
            "cheated": ("resolved", "PROVIDER_WRONG"),
            "greedy": ("settled", "PROVIDER_CORRECT"),
            "random": ("settled", "NON_DETERMINISTIC")}

        # The providers' own records follow the ruling too (they learn it when they next
        # touch the deal on chain: at the latest once their acceptance timeout passes).
        def provider_outcomes() -> list[tuple[str, str | None]]:
            return sorted((d["phase"], d.get("outcome"))
                          for node in (honest, cheat) for d in node.call("deals"))

        world.cluster.wait_until(
            lambda: all(phase in FINAL for phase, _ in provider_outcomes()),
            timeout_s=PROVIDER_LEARNS_WITHIN_S, what="the providers to see their deals end")
        assert provider_outcomes() == [("resolved", "PROVIDER_WRONG"), ("settled", None),
                                       ("settled", None)]
        # Only the disagreeing check reached the chain as a dispute.
        reader = world.settlement(node_identity(world, "client"))
        assert {name: reader.deal_state(bytes.fromhex(d["deal_id"][2:])).status.name
                for name, d in deals.items()} == {
            "cheated": "RESOLVED", "greedy": "SETTLED", "random": "SETTLED"}

        # `lilypad-p2p dispute` refuses a deal that is no longer open to dispute.
        refused = subprocess.run(
            [sys.executable, "-m", "lilypad_p2p.cli", "dispute", keys["greedy"],
             "--home", str(client.home)], capture_output=True, text=True, timeout=60)
        assert refused.returncode == 1 and "settled" in refused.stdout + refused.stderr

        after = {name: _free(world, a) for name, a in addresses.items()}
        # The cheat lost one collateral and earned nothing; the honest provider was paid twice.
        assert before["cheat"] - after["cheat"] == COLLATERAL_WEI
        assert after["honest"] - before["honest"] == 2 * PRICE_WEI
        # Three mediations, each fee split among its signers (never the liar), who claim it
        # once the window for late signatures has closed on the chain's clock.
        advance_chain_time(world.settlement(node_identity(world, "client")).chain,
                           MEDIATION_WINDOW_S + 1)

        def claimed() -> int:
            return sum(_free(world, addresses[m]) - before[m] for m in mediator_names)

        # The two agreeing checks' shares come in the client's batched payFees (due 30 s
        # after the first deal owing them settles), the dispute's by claimMediationFee.
        world.cluster.wait_until(lambda: claimed() == 3 * FEE_WEI, timeout_s=90.0,
                                 what="the signers to be paid their fee shares")
        assert _free(world, addresses[mediator_names[0]]) == before[mediator_names[0]]
