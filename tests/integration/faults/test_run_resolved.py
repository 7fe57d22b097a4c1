"""`lilypad-p2p run` on a job whose result goes to mediation: with a cheating provider, one
honest mediator and a client that spot-checks every job, the deal is disputed, then resolved
PROVIDER_WRONG; `run` follows both phases and ends in one line with a non-zero exit as soon as
the verdict is on chain, instead of waiting out its 900 s."""

import os
import subprocess
import sys
import time

import pytest

from lilypad_p2p.localnet import market_world
from lilypad_p2p.testing import require_anvil, require_docker
from lilypad_p2p.testing._mediation import start_spot_checked_market

pytestmark = [pytest.mark.net, pytest.mark.chain, pytest.mark.docker, pytest.mark.slow]
RESOLVED_WITHIN_S = 240


def test_run_ends_when_the_deal_is_resolved(tmp_path):
    require_anvil()
    require_docker("the provider and the mediator run the job in Docker")
    with market_world(tmp_path / "m") as world:
        cheat, _, client = start_spot_checked_market(
            world, "cheat", provider_config="cheat_wrong_output = true")
        env = {k: v for k, v in os.environ.items() if not k.startswith("LILYPAD_")}
        started = time.monotonic()
        ran = subprocess.run(
            [sys.executable, "-m", "lilypad_p2p.cli", "run", "hash", "-i", "text=x",
             "--target", cheat.status["address"], "--output", str(tmp_path / "out"),
             "--home", str(client.home)],
            env=env, capture_output=True, text=True, timeout=RESOLVED_WITHIN_S)
        assert time.monotonic() - started < RESOLVED_WITHIN_S
        assert ran.returncode == 1, (ran.stdout, ran.stderr)
        assert "disputed" in ran.stdout and "resolved" in ran.stdout
        assert ran.stderr.strip().splitlines() == [
            "error: deal resolved: the mediators found the provider's result wrong; the "
            "payment was returned to you"]
        assert not (tmp_path / "out").exists()
