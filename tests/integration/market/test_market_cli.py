"""`lilypad-p2p run` and `lilypad-p2p deals` against real nodes (a targeted wordcount job)."""

import os
import subprocess
import sys

import pytest

from lilypad_p2p.localnet import market_world
from lilypad_p2p.testing import require_anvil, require_docker

pytestmark = [pytest.mark.net, pytest.mark.chain, pytest.mark.docker, pytest.mark.slow]
CLI_TIMEOUT_S = 120


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LILYPAD_")}
    return subprocess.run([sys.executable, "-m", "lilypad_p2p.cli", *args], env=env,
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S)


def test_run_writes_verified_outputs_and_deals_lists_them(tmp_path):
    require_anvil()
    require_docker("the provider runs the job in Docker")
    text = tmp_path / "input.txt"
    text.write_text("b a b c b a\n")
    with market_world(tmp_path / "market") as world:
        provider = world.start("provider", roles=["provider"])
        client = world.start("client", roles=["client"], bootstrap=[provider.dial_addr])
        world.wait_until_known(client, [provider])
        out = tmp_path / "out"
        ran = _cli("run", "wordcount", "--file", str(text), "-i", "top=2",
                   "--target", provider.status["address"], "--output", str(out),
                   "--home", str(client.home))
        assert ran.returncode == 0, ran.stderr
        for step in ("matched", "agreed", "open", "running", "accepted"):
            assert step in ran.stdout
        assert (out / "top-words.txt").read_text().split() == ["3", "b", "2", "a"]
        assert (out / "counts.txt").read_text().split() == ["1", "6", "12"]

        listed = _cli("deals", "--home", str(client.home))
        assert listed.returncode == 0, listed.stderr
        assert "client" in listed.stdout and "wordcount" in listed.stdout

        bad = _cli("run", "nosuchmodule", "--home", str(client.home))
        assert bad.returncode != 0 and "unknown module" in bad.stderr

        # -i values are text, read by the parameter's kind: a str parameter takes digits, an
        # int parameter refuses words, each in one line.
        for pair, said in (("top=two", "parameter 'top': expected int, got 'two'"),
                           ("top=²", "parameter 'top': expected int, got '²'")):
            bad = _cli("run", "wordcount", "--file", str(text), "-i", pair,
                       "--home", str(client.home))
            assert bad.returncode == 1 and said in bad.stderr, bad.stderr
            assert bad.stderr.count("\n") == 1, bad.stderr
