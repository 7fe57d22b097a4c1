"""Inputs and outputs past the old 64 MiB frame cap move through a deal as sealed chunk
streams: real node processes, a real Docker job that copies its input to its output, and the
client's result file bit-identical to what went in. Neither node's memory grows with them."""

import hashlib
import re
import tarfile
from pathlib import Path

import pytest

from lilypad_p2p.localnet import market_world
from lilypad_p2p.testing import random_file, require_anvil, require_docker

pytestmark = [pytest.mark.net, pytest.mark.chain, pytest.mark.docker, pytest.mark.slow]
MIB = 2**20
SIZE = 100 * MIB
JOB_TIMEOUT_S = 400.0
# The nodes stream one chunk (1 MiB) at a time; anything near the payload means buffering.
RSS_GROWTH_LIMIT_MIB = 64
COPY_SCRIPT = b"""\
import shutil
with open('/inputs/data.bin', 'rb') as src, open('/outputs/data.bin', 'wb') as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
"""


def _kib(pid: int, field: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
    assert match is not None
    return int(match.group(1))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while piece := fh.read(MIB):
            digest.update(piece)
    return digest.hexdigest()


def test_100_mib_in_and_out_through_a_docker_job(tmp_path):
    require_anvil()
    require_docker("the provider runs the job in Docker", image="lilypad-p2p/python")
    data = random_file(tmp_path / "data.bin", SIZE // MIB)
    script = tmp_path / "main.py"
    script.write_bytes(COPY_SCRIPT)
    with market_world(tmp_path / "market") as world:
        provider = world.start("provider", roles=["provider"])
        client = world.start("client", roles=["client"], bootstrap=[provider.dial_addr])
        world.wait_until_known(client, [provider])

        def run(data: Path) -> dict:
            key = client.call("submit", {
                "module": "python", "params": {"script": "main.py"},
                "file_paths": {"main.py": str(script), "data.bin": str(data)},
                "target": provider.status["address"],
            })["key"]
            deal = world.wait_for_phase(client, key, {"accepted", "settled", "rejected",
                                                      "timed_out", "cancelled"},
                                        timeout_s=JOB_TIMEOUT_S)
            assert deal["phase"] in ("accepted", "settled"), (deal, provider.log_tail(30))
            return deal

        # A first small job: the provider builds the module's image archive once (its own
        # memory cost, whatever the job's size).
        small = tmp_path / "small.bin"
        small.write_bytes(b"warm")
        run(small)
        pids = {"client": client.process.pid, "provider": provider.process.pid}
        before = {name: _kib(pid, "VmHWM") for name, pid in pids.items()}
        deal = run(data)
        growth_mib = {name: (_kib(pid, "VmHWM") - before[name]) / 1024
                      for name, pid in pids.items()}
        result = Path(deal["result_path"])
        assert result.stat().st_mode & 0o777 == 0o600
        with tarfile.open(result) as archive:
            archive.extract("data.bin", tmp_path / "out", filter="data")
        assert _sha256(tmp_path / "out" / "data.bin") == _sha256(data)
        # The result hash on chain is the plaintext tarball's sha256 (its CID's digest).
        assert deal["result_cid"] and _sha256(result)
        spools = list((client.home / "spool").rglob("*")) + list(
            (provider.home / "spool").rglob("*.inputs"))
        assert all(p.is_dir() or p.stat().st_mode & 0o777 == 0o600 for p in spools)
    assert all(g < RSS_GROWTH_LIMIT_MIB for g in growth_mib.values()), growth_mib
