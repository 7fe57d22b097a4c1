"""`lilypad-p2p run` and `lilypad-p2p deals` against real nodes (a targeted wordcount job)."""

import os
import signal
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from lilypad_p2p.cli import app
from lilypad_p2p.localnet import market_world
from lilypad_p2p.testing import require_anvil, require_docker

pytestmark = [pytest.mark.net, pytest.mark.chain, pytest.mark.docker, pytest.mark.slow]
CLI_TIMEOUT_S = 120


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LILYPAD_")}
    return subprocess.run([sys.executable, "-m", "lilypad_p2p.cli", *args], env=env,
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S)


def _in_process(*args: str):
    """The CLI's result in this process (no interpreter to start per case)."""
    return CliRunner().invoke(app, list(args),
                              env={k: None for k in os.environ if k.startswith("LILYPAD_")})


def _refused(*args: str) -> str:
    """A `run` refused before posting: its one line."""
    result = _in_process("run", *args)
    assert result.exit_code == 1, result.output
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr


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
        # One deal in full, by the start of its key: where its outputs' archive is, and its
        # phases; a key this node does not hold is one line.
        (row,) = listed.stdout.splitlines()[1:]
        key = row.split()[-1]
        shown = _in_process("deals", key[:12], "--home", str(client.home))
        assert shown.exit_code == 0, shown.output
        lines = {line.split(None, 1)[0]: line for line in shown.stdout.splitlines()}
        assert lines["key"].endswith(key), shown.stdout
        assert lines["phase"].split()[1] in {"accepted", "settled"}, shown.stdout
        assert str(client.home / "results") in lines["outputs"], shown.stdout
        assert "running -> " in shown.stdout, shown.stdout
        missing = _in_process("deals", "ffff", "--home", str(client.home))
        assert missing.exit_code == 1 and missing.stderr == (
            "error: no deal ffff on this node: `lilypad-p2p deals` lists its deals\n")

        bad = _cli("run", "nosuchmodule", "--home", str(client.home))
        assert bad.returncode != 0 and "unknown module" in bad.stderr

        # -i values are text, read by the parameter's kind: a str parameter takes digits, an
        # int parameter refuses words, each in one line.
        for pair, said in (("top=two", "parameter 'top': expected int, got 'two'"),
                           ("top=²", "parameter 'top': expected int, got '²'")):
            assert said in _refused("wordcount", "--file", str(text), "-i", pair, "--output",
                                    str(tmp_path / "unused"), "--home", str(client.home))

        # What can be checked locally is, before anything is posted: an output directory
        # holding files, a module's missing input file, a market the node is not in, a target
        # that owns no offer, a price below every offer, and a node without the client role.
        provider_address = provider.status["address"]
        deals_before = _cli("deals", "--home", str(client.home)).stdout
        for args, said in (
            (("wordcount", "--file", str(text), "--output", str(out)),
             f"--output {out} is not empty (counts.txt, top-words.txt): give a new or empty "
             "directory, or --force"),
            (("wordcount", "--output", str(tmp_path / "o1")),
             "module wordcount reads /inputs/input.txt (parameter 'file'), but no input file "
             "is named 'input.txt'"),
            (("hash", "-i", "text=x", "--market", "gpu", "--output", str(tmp_path / "o2")),
             "this node is not in market 'gpu'; its markets: cpu"),
            (("hash", "-i", "text=x", "--target", "0x" + "00" * 20,
              "--output", str(tmp_path / "o3")), "is the zero address, no provider"),
            (("hash", "-i", "text=x", "--target", client.status["address"],
              "--output", str(tmp_path / "o4")), "is this node's own address"),
            (("hash", "-i", "text=x", "--max-price", "1", "--target", provider_address,
              "--output", str(tmp_path / "o5")), "--max-price 1 wei is below every offer"),
            (("hash", "-i", "text=x", "--home", str(provider.home)),
             "this node was not started with --client: restart it with --client"),
        ):
            home = () if "--home" in args else ("--home", str(client.home))
            assert said in _refused(*args, *home)
        assert _cli("deals", "--home", str(client.home)).stdout == deals_before
        assert (out / "counts.txt").read_text().split() == ["1", "6", "12"]  # untouched

        # Stopped while it waits (no solver here: an untargeted job stays offered), `run`
        # says the node keeps driving the job and where its outputs will be.
        waiting = subprocess.Popen(
            [sys.executable, "-m", "lilypad_p2p.cli", "run", "hash", "-i", "text=x",
             "--output", str(tmp_path / "o6"), "--home", str(client.home)],
            env={k: v for k, v in os.environ.items() if not k.startswith("LILYPAD_")},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert waiting.stdout is not None
        posted = waiting.stdout.readline()
        assert posted.startswith("job offer "), posted
        waiting.send_signal(signal.SIGTERM)
        _, stderr = waiting.communicate(timeout=CLI_TIMEOUT_S)
        key = posted.split()[2]
        assert waiting.returncode == 128 + signal.SIGTERM, stderr
        assert stderr.startswith(f"interrupted: the node keeps driving deal {key}"), stderr
        assert stderr.count("\n") == 1 and "`lilypad-p2p deals`" in stderr, stderr
        assert key in _cli("deals", "--home", str(client.home)).stdout
