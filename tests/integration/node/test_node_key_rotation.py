"""Peers learn a rotated node's new identity from its NodeRecord: real node processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from eth_keys.datatypes import PrivateKey

from lilypad_p2p import wire
from lilypad_p2p.identity import Identity, save_handover
from lilypad_p2p.localnet import LocalCluster

pytestmark = [pytest.mark.net, pytest.mark.slow]


def rotations(node) -> dict:
    try:
        return node.call("status")["key_rotations"]
    except Exception:  # a node busy starting up answers later; the deadline bounds the wait
        return {}


def test_a_peer_learns_the_successor_of_a_retired_key(tmp_path: Path) -> None:
    retired = Identity.generate()
    successor = Identity.generate()
    home = tmp_path / "rotated"
    successor.save(home / "keys")
    save_handover(home / "keys", retired.address, retired.sign_handover(successor.address))

    cluster = LocalCluster(tmp_path)
    with cluster.running():
        watcher = cluster.start_node("watcher", roles=["solver"])
        watcher.wait_ready()
        rotated = cluster.start_node("rotated", roles=["solver"], bootstrap=[watcher.dial_addr])
        assert rotated.wait_ready()["address"] == successor.address
        cluster.wait_until(lambda: rotations(watcher) == {retired.address: successor.address},
                           timeout_s=30, what="the watcher to learn the rotation")


def test_a_forged_hand_over_is_refused_at_start_in_one_line(tmp_path: Path) -> None:
    successor = Identity.generate()
    home = tmp_path / "forged"
    successor.save(home / "keys")
    victim = PrivateKey(b"\x07" * 32).public_key.to_checksum_address()
    thief = PrivateKey(b"\x08" * 32)
    (home / "keys" / "handover.json").write_text(json.dumps({
        "predecessor": victim, "signature": wire.sign_handover(thief, successor.address).hex(),
    }))
    (home / "keys" / "handover.json").chmod(0o600)
    result = subprocess.run(
        [sys.executable, "-m", "lilypad_p2p.cli", "node", "--home", str(home), "--solver",
         "--listen", "/ip4/127.0.0.1/tcp/0"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "handover.json" in errors[0], result.stderr
    assert "Traceback" not in result.stderr
