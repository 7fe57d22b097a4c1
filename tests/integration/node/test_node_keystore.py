"""A real `lilypad-p2p node` process unlocks its encrypted keystore unattended, and refuses a
wrong password, a missing password file or one others can read with one line and a non-zero
exit (before it opens any socket)."""

import os

import pytest

from lilypad_p2p.identity import Identity, Password
from lilypad_p2p.localnet import LocalCluster

pytestmark = [pytest.mark.net]

PASSWORD = "node password"
REFUSAL_TIMEOUT_S = 60  # the process imports web3 and libp2p before refusing: slow when loaded


def _home_with_encrypted_keys(tmp_path, name: str) -> Identity:
    identity = Identity.generate()
    identity.save(tmp_path / name / "keys", Password(PASSWORD), scrypt_n=1 << 12)
    return identity


def _password_file(tmp_path, text: str, mode: int = 0o600):
    path = tmp_path / f"password-{len(os.listdir(tmp_path))}"
    path.write_text(text + "\n")
    os.chmod(path, mode)
    return path


def test_node_starts_unattended_from_a_password_file(tmp_path):
    identity = _home_with_encrypted_keys(tmp_path, "n")
    cluster = LocalCluster(tmp_path)
    with cluster.running():
        node = cluster.start_node(
            "n", extra_args=["--password-file", str(_password_file(tmp_path, PASSWORD))]
        )
        status = node.wait_ready()
        assert status["address"] == identity.address
        assert status["peer_id"] == str(identity.peer_id)
        assert PASSWORD not in node.log_path.read_text()


@pytest.mark.parametrize("case", ["wrong password", "missing file", "mode 0644", "no password"])
def test_node_refuses_to_start_with_one_line(tmp_path, case):
    _home_with_encrypted_keys(tmp_path, "n")
    if case == "wrong password":
        args = ["--password-file", str(_password_file(tmp_path, "not it"))]
        expected = "wrong password"
    elif case == "missing file":
        args = ["--password-file", str(tmp_path / "absent")]
        expected = "does not exist"
    elif case == "mode 0644":
        args = ["--password-file", str(_password_file(tmp_path, PASSWORD, 0o644))]
        expected = "chmod 600"
    else:
        args = []
        expected = "--password-file"
    cluster = LocalCluster(tmp_path)
    with cluster.running():
        node = cluster.start_node("n", extra_args=args)
        code = node.process.wait(REFUSAL_TIMEOUT_S)
    lines = node.log_path.read_text().strip().splitlines()
    assert code != 0
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ") and expected in lines[0]
    assert PASSWORD not in lines[0]


def test_a_plaintext_home_still_starts_with_a_warning(tmp_path):
    identity = Identity.generate()
    identity.save(tmp_path / "n" / "keys")  # the legacy format, as simnets and tests write it
    cluster = LocalCluster(tmp_path)
    with cluster.running():
        node = cluster.start_node("n")
        assert node.wait_ready()["address"] == identity.address
    log = node.log_path.read_text()
    assert '"event":"keys.plaintext"' in log and "lilypad-p2p keys encrypt" in log
    assert identity._secp256k1_secret.hex() not in log
