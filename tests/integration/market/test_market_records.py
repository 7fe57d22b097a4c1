"""A client's record requirement and `lilypad-p2p market`, against real nodes, anvil and Docker.

A newcomer provider (no deal yet) is refused by a job that requires one completed deal: the
solver (a node with no market role, reading the chain read-only) leaves it unmatched, and the
provider's `market` view says why ("record"). A job that admits newcomers settles; the records
then count from the next block, so a new job with the same requirement is matched to the same
provider and settles too.
"""
import contextlib
import json
import os
import subprocess
import sys

import pytest

from lilypad_p2p.control import ControlError
from lilypad_p2p.localnet import market_world
from lilypad_p2p.testing import require_anvil, require_docker

pytestmark = [pytest.mark.net, pytest.mark.chain, pytest.mark.docker, pytest.mark.slow]
SETTLED_WITHIN_S = 180.0
VIEW_WITHIN_S = 60.0
CLI_TIMEOUT_S = 60
ENDED = {"settled", "rejected", "cancelled", "timed_out"}


def _submit(client, **params) -> str:
    return client.call("submit", {"module": "hash", **params})["key"]


def _market_cli(home, *flags: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LILYPAD_")}
    return subprocess.run([sys.executable, "-m", "lilypad_p2p.cli", "market", "--market",
                           "cpu", "--home", str(home), *flags], env=env, capture_output=True,
                          text=True, timeout=CLI_TIMEOUT_S)


def test_a_required_record_keeps_newcomers_out_and_the_market_view_says_why(tmp_path):
    require_anvil()
    require_docker("the provider runs the jobs in Docker")
    with market_world(tmp_path) as world:
        # A provider receives the market's job offers and matches only when it asks to.
        provider = world.start("provider", roles=["provider"], config_lines="follow_markets = true")
        # A solver alone: it reads the records from the chain in its config, read-only.
        world.start("solver", roles=["solver"], bootstrap=[provider.dial_addr])
        client = world.start("client", roles=["client"], bootstrap=[provider.dial_addr])
        world.wait_until_known(client, [provider])

        picky = _submit(client, params={"text": "only proven providers"},
                        min_completed_deals=1)
        reasons: dict = {}

        def refused_for_its_record() -> bool:
            nonlocal reasons
            with contextlib.suppress(ControlError, OSError):
                view = provider.call("market", {"market": "cpu"})
                listed = {job["id"]: job for job in view["open_jobs"]}
                if picky in listed and view["own_offers"]:
                    reasons = view["own_offers"][0]["reasons"]
                    example = view["own_offers"][0]["examples"].get("record", "")
                    return (listed[picky]["min_completed_deals"] == 1 and "record" in reasons
                            and example.startswith("record: 0 completed deals"))
            return False

        world.cluster.wait_until(refused_for_its_record, timeout_s=VIEW_WITHIN_S,
                                 what="the provider's market view to show the refused job")
        assert client.call("deal", {"key": picky})["phase"] == "offered"

        open_job = _submit(client, params={"text": "newcomers welcome"})
        deal = world.wait_for_phase(client, open_job, ENDED, timeout_s=SETTLED_WITHIN_S)
        assert deal["phase"] == "settled", deal

        # Records are read at the block a job names: the first job's block predates the deal.
        later = _submit(client, params={"text": "proven now"}, min_completed_deals=1)
        deal = world.wait_for_phase(client, later, ENDED, timeout_s=SETTLED_WITHIN_S)
        assert deal["phase"] == "settled", deal
        assert client.call("deal", {"key": picky})["phase"] == "offered"

        shown = _market_cli(provider.home, "--json")
        assert shown.returncode == 0, shown.stderr
        view = json.loads(shown.stdout)
        assert view["prices"]["count"] >= 1 and view["prices"]["last"] is not None
        assert view["own_offers"][0]["reasons"].get("matched", 0) >= 1
        human = _market_cli(provider.home)
        assert human.returncode == 0, human.stderr
        assert "going price" in human.stdout and "our offer" in human.stdout
        bad = _market_cli(tmp_path / "no-node")
        assert bad.returncode != 0 and "Traceback" not in bad.stderr
