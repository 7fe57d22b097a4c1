"""`lilypad-p2p run --file` hands the node paths: files past the old 4 MiB control-line cap
run, and files over the node's max_job_bytes are refused up front with one line, before any
deal."""

import os
import subprocess
import sys

import pytest

from lilypad_p2p.config import DEFAULT_MAX_JOB_BYTES
from lilypad_p2p.localnet import market_world
from lilypad_p2p.testing import require_anvil, require_docker

pytestmark = [pytest.mark.net, pytest.mark.chain, pytest.mark.docker, pytest.mark.slow]
CLI_TIMEOUT_S = 300
MIB = 2**20


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LILYPAD_")}
    return subprocess.run([sys.executable, "-m", "lilypad_p2p.cli", *args], env=env,
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S)


def test_large_files_run_and_oversized_or_missing_ones_are_refused_up_front(tmp_path):
    require_anvil()
    require_docker("the provider runs the job in Docker")
    # One 6 MiB word: past the control line's 4 MiB, and cheap for wordcount's sort.
    word = tmp_path / "word.txt"
    word.write_bytes(b"x" * (6 * MIB) + b"\n")
    oversized = tmp_path / "oversized.bin"
    with open(oversized, "wb") as fh:  # sparse: refused on its size, never read
        fh.truncate(DEFAULT_MAX_JOB_BYTES)
    with market_world(tmp_path / "market") as world:
        provider = world.start("provider", roles=["provider"])
        client = world.start("client", roles=["client"], bootstrap=[provider.dial_addr])
        world.wait_until_known(client, [provider])
        home = str(client.home)

        for path, message in (
            # The stream's header (names and parameters) is counted too: 4 GiB of file is over.
            (oversized, "the job's inputs take 4294967390 bytes, over this node's max_job_bytes "
                        "of 4294967296: pass smaller files, split the work into several jobs, "
                        "or raise max_job_bytes in config.toml"),
            (tmp_path / "missing.txt", "no such file"),
            (tmp_path, "is a directory"),
        ):
            # Named as the module's input file: a file it would not read is refused first.
            refused = _cli("run", "wordcount", "--file", str(path), "-i", f"file={path.name}",
                           "--home", home)
            assert refused.returncode != 0
            assert message in refused.stderr
            assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert "no deals" in _cli("deals", "--home", home).stdout

        out = tmp_path / "out"
        ran = _cli("run", "wordcount", "--file", str(word), "-i", "file=word.txt",
                   "--target", provider.status["address"], "--output", str(out),
                   "--home", home)
        assert ran.returncode == 0, ran.stderr
        assert (out / "counts.txt").read_text().split() == ["1", "1", str(6 * MIB + 1)]
