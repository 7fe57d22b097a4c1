"""Full disks, on a small tmpfs the test mounts as a node's home (root only):

- a client whose disk fills up while its job runs does not die: it reports `disk_full`, keeps
  retrying, and once space is freed the deal settles with funds conserved;
- a provider whose disk fills up withdraws its offer, and offers again (and runs a job) once
  space is freed;
- a provider with less free disk than a module may write says so at start, and
  `offer_disk_mb` lets it offer more."""

import base64
import contextlib
import os
import subprocess
import sys

import pytest

from lilypad_p2p.control import ControlError
from lilypad_p2p.localnet import market_world
from lilypad_p2p.testing import require_anvil, require_docker

pytestmark = [pytest.mark.net, pytest.mark.chain, pytest.mark.docker, pytest.mark.slow]
WAIT_S = 90.0
SLOW_SCRIPT = b"import time\ntime.sleep(6)\nopen('/outputs/out.txt', 'w').write('x' * 4096)\n"


@contextlib.contextmanager
def small_tmpfs(path, size_mib):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}m", "tmpfs", str(path)],
                   check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(directory) -> None:
    with open(directory / "filler", "wb") as fh:
        chunk = b"\0" * (1 << 20)
        with contextlib.suppress(OSError):
            while True:
                fh.write(chunk)
                fh.flush()
    with contextlib.suppress(OSError), open(directory / "filler2", "wb") as fh:
        while True:  # the last bytes, in small writes
            fh.write(b"\0" * 512)
            fh.flush()


def _faults(node) -> set[str]:
    with contextlib.suppress(ControlError, OSError):
        return {f["fault"] for f in node.call("status").get("faults", [])}
    return set()


def test_client_on_a_full_disk_survives_and_settles_after_space_is_freed(tmp_path):
    require_anvil()
    require_docker("the python module", image="lilypad-p2p/python:latest")
    with market_world(tmp_path / "m") as world, small_tmpfs(tmp_path / "m" / "client", 100):
        provider = world.start("provider", roles=["provider"])
        client = world.start("client", roles=["client"], bootstrap=[provider.dial_addr])
        world.wait_until_known(client, [provider])
        target, payer = provider.status["address"], client.status["address"]
        before = world.balance(target) + world.balance(payer)

        key = client.call("submit", {
            "module": "python", "target": target,
            "files": {"main.py": base64.b64encode(SLOW_SCRIPT).decode()},
        })["key"]
        world.wait_for_phase(client, key, {"running"}, timeout_s=WAIT_S)
        _fill(client.home)  # the result arrives on a full disk
        world.cluster.wait_until(lambda: "disk_full" in _faults(client), timeout_s=WAIT_S,
                                 what="the client to report its disk full")
        world.cluster.wait_until(
            lambda: "deal.retry" in client.log_path.read_text(errors="replace")
            or client.process.poll() is not None,
            timeout_s=WAIT_S, what="the client to get the result on a full disk")
        assert client.process.poll() is None, client.log_tail()

        (client.home / "filler").unlink()
        (client.home / "filler2").unlink()
        settled = world.wait_for_phase(client, key, {"settled", "cancelled", "timed_out",
                                                     "rejected"}, timeout_s=WAIT_S)
        assert settled["phase"] == "settled", settled
        world.cluster.wait_until(lambda: not _faults(client), timeout_s=WAIT_S,
                                 what="the client to clear disk_full")
        assert world.balance(target) + world.balance(payer) == before
        world.stop_all()
        assert client.process.returncode == 0, client.log_tail()


def _owners(node) -> set[str]:
    with contextlib.suppress(ControlError, OSError):
        return {o["owner"] for o in node.call("offers", {"market": "cpu"})}
    return set()


def test_provider_on_a_full_disk_withdraws_its_offer_until_space_is_freed(tmp_path):
    require_anvil()
    require_docker("the provider's Docker engine must answer, so only the disk is at fault")
    with market_world(tmp_path / "m") as world, small_tmpfs(tmp_path / "m" / "provider", 100):
        provider = world.start("provider", roles=["provider"])
        client = world.start("client", roles=["client"], bootstrap=[provider.dial_addr])
        world.wait_until_known(client, [provider])
        target = provider.status["address"]

        _fill(provider.home)
        world.cluster.wait_until(lambda: "disk_full" in _faults(provider), timeout_s=WAIT_S,
                                 what="the provider to report its disk full")
        world.cluster.wait_until(lambda: target not in _owners(client), timeout_s=WAIT_S,
                                 what="the offer withdrawn")
        assert provider.process.poll() is None, provider.log_tail()

        (provider.home / "filler").unlink()
        (provider.home / "filler2").unlink()
        world.cluster.wait_until(lambda: target in _owners(client), timeout_s=WAIT_S,
                                 what="the provider to offer again")
        key = client.call("submit", {"module": "hash", "params": {"text": "room"},
                                     "target": target})["key"]
        settled = world.wait_for_phase(client, key, {"settled", "cancelled", "timed_out"},
                                       timeout_s=WAIT_S)
        assert settled["phase"] == "settled", settled


def _offered_disk(node, owner) -> set[str]:
    with contextlib.suppress(ControlError, OSError):
        return {o["summary"].split(" MB disk")[0].rsplit(" ", 1)[-1]
                for o in node.call("offers", {"market": "cpu"}) if o["owner"] == owner}
    return set()


def test_provider_with_less_free_disk_than_python_needs_says_so_until_offer_disk_mb_is_set(
        tmp_path):
    require_anvil()
    require_docker("the python module", image="lilypad-p2p/python:latest")
    with market_world(tmp_path / "m") as world, small_tmpfs(tmp_path / "m" / "provider", 100):
        # The disk it offers detected: the free space of its 100 MiB home, below the 4 GiB a
        # python job may write.
        provider = world.start("provider", roles=["provider"],
                               env={"LILYPAD_OFFER_DISK_MB": "0"})
        client = world.start("client", roles=["client"], bootstrap=[provider.dial_addr])
        world.wait_until_known(client, [provider])
        target, payer = provider.status["address"], client.status["address"]
        log = provider.log_path.read_text(errors="replace")
        assert "offer.modules_beyond_capacity" in log and "python (needs" in log, log
        shown = subprocess.run(
            [sys.executable, "-m", "lilypad_p2p.cli", "status", "--home", str(provider.home)],
            capture_output=True, text=True, timeout=60, check=True).stdout
        assert "not offered: python (needs 1000 mCPU, 256 MiB RAM, 4096 MiB disk, 0 GPU): " \
               "more than this provider offers" in shown, shown
        with pytest.raises(ControlError, match="offers nothing in market 'cpu' that takes "
                                               "module python"):
            client.call("submit", {"module": "python", "target": target,
                                   "files": {"main.py": base64.b64encode(b"pass\n").decode()}})

        assert provider.stop() == 0, provider.log_tail()
        started = len(provider.log_path.read_bytes())
        # Its config.toml sets offer_disk_mb, as every provider's in a local world does.
        provider = world.restart(provider, roles=["provider"], bootstrap=[client.dial_addr])
        world.cluster.wait_until(lambda: "16384" in _offered_disk(client, target),
                                 timeout_s=WAIT_S, what="the client to hold the larger offer")
        before = world.balance(target) + world.balance(payer)
        key = client.call("submit", {
            "module": "python", "target": target,
            "files": {"main.py": base64.b64encode(b"open('/outputs/o', 'w').write('ok')\n")
                      .decode()},
        })["key"]
        settled = world.wait_for_phase(client, key, {"settled", "cancelled", "timed_out",
                                                     "rejected"}, timeout_s=WAIT_S)
        assert settled["phase"] == "settled", settled
        assert world.balance(target) + world.balance(payer) == before
        assert b"offer.modules_beyond_capacity" not in provider.log_path.read_bytes()[started:]
        assert provider.call("status")["modules_beyond_offer"] == []
