"""`lilypad-p2p keys new`, `keys encrypt` and a node's first start with a password, as an
operator runs them: the keys are written at the default scrypt cost (2^18, about a second and
256 MiB a key file to write or to unlock), which the unit tests avoid by writing their
keystores at a small N. The plaintext warning is read from the CLI's own process, where
Python's last-resort log handler prints it."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

from eth_account import Account
from typer.testing import CliRunner

from lilypad_p2p.cli import app
from lilypad_p2p.identity import KEY_FILE_NAME, Identity, Password
from lilypad_p2p.keystore import is_encrypted

PASSWORD = "correct horse battery staple"
DEFAULT_SCRYPT_N = 1 << 18  # geth's "standard" and eth-account's default
CLI_TIMEOUT_S = 60  # a CLI start and two unlocks at the default cost, on a loaded machine


def _cli(*args: str):
    unset = {"LILYPAD_KEY_PASSWORD": None, "LILYPAD_KEY_PASSWORD_FILE": None}
    return CliRunner().invoke(app, list(args), env=unset)


def _cli_process(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LILYPAD_")}
    return subprocess.run([sys.executable, "-m", "lilypad_p2p.cli", *args], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=CLI_TIMEOUT_S)


def _password_file(tmp_path):
    path = tmp_path / "password"
    path.write_text(PASSWORD + "\n")
    os.chmod(path, 0o600)
    return path


def test_keys_new_encrypts_at_the_default_cost_and_refuses_without_a_password(tmp_path):
    home = tmp_path / "home"
    refused = _cli("keys", "new", "--home", str(home))
    assert refused.exit_code == 1
    assert "--insecure-plaintext" in refused.output and len(refused.output.splitlines()) == 1
    assert not (home / "keys" / KEY_FILE_NAME).exists()
    made = _cli("keys", "new", "--home", str(home), "--json",
                "--password-file", str(_password_file(tmp_path)))
    assert made.exit_code == 0, made.output
    shown = json.loads(made.output)
    assert shown["encrypted"] is True
    document = json.loads((home / "keys" / KEY_FILE_NAME).read_text())
    assert document["crypto"]["kdfparams"]["n"] == DEFAULT_SCRYPT_N
    assert Account.from_key(Account.decrypt(document, PASSWORD)).address == shown["address"]


def test_a_first_start_with_a_password_creates_encrypted_keys_it_can_load_again(tmp_path):
    keystore = tmp_path / "home" / "keys"
    created = Identity.load_or_create(keystore, Password(PASSWORD))
    assert is_encrypted(keystore) is True
    document = json.loads((keystore / KEY_FILE_NAME).read_text())
    assert document["crypto"]["kdfparams"]["n"] == DEFAULT_SCRYPT_N
    assert Identity.load_or_create(keystore, Password(PASSWORD)).address == created.address


def test_keys_encrypt_converts_a_plaintext_home(tmp_path, caplog):
    keystore = tmp_path / "home" / "keys"
    identity = Identity.generate()
    identity.save(keystore)
    with caplog.at_level(logging.WARNING):
        shown = _cli("keys", "show", "--home", str(keystore.parent))
    assert shown.exit_code == 0 and "keys encrypt" in caplog.text
    result = _cli("keys", "encrypt", "--home", str(keystore.parent),
                  "--password-file", str(_password_file(tmp_path)))
    assert result.exit_code == 0, result.output
    document = json.loads((keystore / KEY_FILE_NAME).read_text())
    assert document["crypto"]["kdfparams"]["n"] == DEFAULT_SCRYPT_N
    assert Identity.load(keystore, Password(PASSWORD)).address == identity.address


def test_plaintext_keystore_warnings_are_sentences(tmp_path):
    home = tmp_path / "home"
    Identity.generate().save(home / "keys")
    shown = _cli_process("keys", "show", "--home", str(home))
    assert shown.returncode == 0, shown.stderr
    assert shown.stderr.splitlines() == [
        f"warning: the keys in {home / 'keys'} are stored unencrypted; run "
        "`lilypad-p2p keys encrypt`"]
    # Converting needs no warning that the keys are plaintext: that is what it fixes.
    converted = _cli_process("keys", "encrypt", "--home", str(home), "--password-file",
                             str(_password_file(tmp_path)))
    assert converted.returncode == 0, converted.stderr
    assert converted.stderr == ""
