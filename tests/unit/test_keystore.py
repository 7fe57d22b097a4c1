"""The encrypted keystore: round trip, eth-account compatibility, refusals with one line."""

import json
import logging
import os
import pickle
import stat

import pytest
from eth_account import Account
from typer.testing import CliRunner

from lilypad_p2p.cli import app
from lilypad_p2p.identity import KEY_FILE_NAME, SEALING_KEY_FILE_NAME, Identity, KeystoreError
from lilypad_p2p.keystore import (
    Password,
    is_encrypted,
    password_source,
    read_password_file,
    stored_address,
)

FAST_N = 1 << 10  # the reader follows the file's N; tests need not pay 2^18
PASSWORD = "correct horse battery staple"


@pytest.fixture
def keystore(tmp_path):
    return tmp_path / "home" / "keys"


def _password_file(tmp_path, text=PASSWORD + "\n", mode=0o600):
    path = tmp_path / "password"
    path.write_text(text)
    os.chmod(path, mode)
    return path


def _secrets(identity):
    return identity._secp256k1_secret, identity._x25519_secret


def test_encrypted_round_trip_holds_no_secret_in_the_clear(keystore):
    identity = Identity.generate()
    identity.save(keystore, Password(PASSWORD), scrypt_n=FAST_N)
    assert is_encrypted(keystore) is True
    loaded = Identity.load(keystore, Password(PASSWORD))
    assert _secrets(loaded) == _secrets(identity)
    for name in (KEY_FILE_NAME, SEALING_KEY_FILE_NAME):
        path = keystore / name
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        content = path.read_text()
        for secret in _secrets(identity):
            assert secret.hex() not in content
        assert json.loads(content)["crypto"]["kdf"] == "scrypt"
    assert "address" not in json.loads((keystore / SEALING_KEY_FILE_NAME).read_text())


def test_eth_account_reads_the_node_key_file(keystore):
    identity = Identity.generate()
    identity.save(keystore, Password(PASSWORD), scrypt_n=FAST_N)
    document = json.loads((keystore / KEY_FILE_NAME).read_text())
    secret = Account.decrypt(document, PASSWORD)
    assert Account.from_key(secret).address == identity.address
    assert document["address"].lower() == identity.address[2:].lower()


def test_a_key_file_written_by_eth_account_loads(keystore):
    # The same format both ways: a geth/eth-account keystore of the node key, plus our sealing key.
    identity = Identity.generate()
    identity.save(keystore, Password(PASSWORD), scrypt_n=FAST_N)
    key = identity._secp256k1_secret
    (keystore / KEY_FILE_NAME).unlink()
    written = Account.encrypt(key, PASSWORD, iterations=FAST_N)
    (keystore / KEY_FILE_NAME).write_text(json.dumps(written))
    os.chmod(keystore / KEY_FILE_NAME, 0o600)
    assert Identity.load(keystore, Password(PASSWORD)).address == identity.address


def test_the_address_is_read_without_the_password(keystore):
    encrypted = Identity.generate()
    encrypted.save(keystore, Password(PASSWORD), scrypt_n=FAST_N)
    assert stored_address(keystore) == encrypted.address
    plain_dir = keystore.parent / "plain"
    plaintext = Identity.generate()
    plaintext.save(plain_dir)
    assert stored_address(plain_dir) == plaintext.address


@pytest.mark.parametrize("address", [None, 7, "", "0x1234", "zz" * 20, "0x" + "ab" * 21])
def test_a_key_file_without_a_readable_address_is_one_line(keystore, address):
    Identity.generate().save(keystore, Password(PASSWORD), scrypt_n=FAST_N)
    path = keystore / KEY_FILE_NAME
    document = json.loads(path.read_text())
    document["address"] = address
    path.write_text(json.dumps(document))
    with pytest.raises(KeystoreError, match="names no address"):
        stored_address(keystore)
    with pytest.raises(KeystoreError, match=r"no key file .*keys new"):
        stored_address(keystore.parent / "nowhere")


def test_wrong_password_is_one_line(keystore):
    Identity.generate().save(keystore, Password(PASSWORD), scrypt_n=FAST_N)
    with pytest.raises(KeystoreError) as caught:
        Identity.load(keystore, Password("wrong"))
    assert "wrong password" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_encrypted_keystore_without_a_password_says_how_to_unlock(keystore, monkeypatch):
    monkeypatch.delenv("LILYPAD_KEY_PASSWORD", raising=False)
    monkeypatch.delenv("LILYPAD_KEY_PASSWORD_FILE", raising=False)
    Identity.generate().save(keystore, Password(PASSWORD), scrypt_n=FAST_N)
    with pytest.raises(KeystoreError, match="--password-file"):
        Identity.load(keystore)
    with pytest.raises(KeystoreError, match="LILYPAD_KEY_PASSWORD"):
        Identity.load(keystore, password_source(None))  # pytest's stdin is not a terminal


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda d: d["crypto"].update(ciphertext="00" * 32), id="ciphertext"),
        pytest.param(lambda d: d["crypto"].update(kdf="argon2"), id="unknown kdf"),
        pytest.param(lambda d: d["crypto"].pop("kdfparams"), id="no kdfparams"),
        pytest.param(lambda d: d.update(version=4), id="version"),
        pytest.param(lambda d: d["crypto"].update(mac="zz"), id="bad hex"),
    ],
)
def test_corrupt_keystore_is_one_line(keystore, mangle):
    identity = Identity.generate()
    identity.save(keystore, Password(PASSWORD), scrypt_n=FAST_N)
    path = keystore / KEY_FILE_NAME
    document = json.loads(path.read_text())
    mangle(document)
    path.write_text(json.dumps(document))
    with pytest.raises(KeystoreError) as caught:
        Identity.load(keystore, Password(PASSWORD))
    message = str(caught.value)
    assert "\n" not in message and ("corrupt" in message or "altered" in message)
    assert PASSWORD not in message


def test_missing_sealing_key_is_refused(keystore):
    Identity.generate().save(keystore, Password(PASSWORD), scrypt_n=FAST_N)
    (keystore / SEALING_KEY_FILE_NAME).unlink()
    with pytest.raises(KeystoreError, match="does not exist"):
        Identity.load(keystore, Password(PASSWORD))


@pytest.mark.parametrize("name", [KEY_FILE_NAME, SEALING_KEY_FILE_NAME])
def test_encrypted_files_others_can_read_are_refused(keystore, name):
    Identity.generate().save(keystore, Password(PASSWORD), scrypt_n=FAST_N)
    os.chmod(keystore / name, 0o644)
    with pytest.raises(KeystoreError, match="chmod 600"):
        Identity.load(keystore, Password(PASSWORD))


def test_password_file_rules(tmp_path):
    assert read_password_file(_password_file(tmp_path)).reveal() == PASSWORD.encode()
    assert read_password_file(_password_file(tmp_path, "p\r\n")).reveal() == b"p"
    assert read_password_file(_password_file(tmp_path, " p \n\n")).reveal() == b" p \n"
    with pytest.raises(KeystoreError, match="chmod 600"):
        read_password_file(_password_file(tmp_path, mode=0o640))
    with pytest.raises(KeystoreError, match="empty"):
        read_password_file(_password_file(tmp_path, "\n"))
    with pytest.raises(KeystoreError, match="does not exist"):
        read_password_file(tmp_path / "nope")


def test_password_sources_in_order(tmp_path, monkeypatch):
    monkeypatch.setenv("LILYPAD_KEY_PASSWORD", "from-env")
    monkeypatch.delenv("LILYPAD_KEY_PASSWORD_FILE", raising=False)
    assert password_source(None)().reveal() == b"from-env"
    monkeypatch.setenv("LILYPAD_KEY_PASSWORD_FILE", str(_password_file(tmp_path, "from-file")))
    assert password_source(None)().reveal() == b"from-file"
    given = tmp_path / "given"
    given.write_text("given")
    os.chmod(given, 0o600)
    assert password_source(given)().reveal() == b"given"


def test_password_hides_itself():
    password = Password(PASSWORD)
    for text in (repr(password), str(password), f"{password}", repr([password])):
        assert PASSWORD not in text
    with pytest.raises(TypeError):
        pickle.dumps(password)


def test_plaintext_key_loads_with_a_warning_and_converts(keystore, caplog):
    identity = Identity.generate()
    identity.save(keystore)
    with caplog.at_level(logging.WARNING):
        assert Identity.load(keystore).address == identity.address
    assert any("keys.plaintext" in r.getMessage() for r in caplog.records)
    converted = Identity.encrypt_keystore(keystore, Password(PASSWORD), scrypt_n=FAST_N)
    assert _secrets(converted) == _secrets(identity)
    assert is_encrypted(keystore) is True
    for secret in _secrets(identity):
        assert secret.hex() not in (keystore / KEY_FILE_NAME).read_text()
    assert sorted(os.listdir(keystore)) == [KEY_FILE_NAME, SEALING_KEY_FILE_NAME]
    with pytest.raises(KeystoreError, match="already encrypted"):
        Identity.encrypt_keystore(keystore, Password(PASSWORD), scrypt_n=FAST_N)


# --- the CLI ---------------------------------------------------------------------------------


def _cli(*args, env=None):
    base = {"LILYPAD_KEY_PASSWORD": None, "LILYPAD_KEY_PASSWORD_FILE": None}
    return CliRunner().invoke(app, list(args), env={**base, **(env or {})})


def test_keys_show_unlocks_from_the_environment(tmp_path, keystore):
    identity = Identity.generate()
    identity.save(keystore, Password(PASSWORD), scrypt_n=FAST_N)
    home = str(keystore.parent)
    result = _cli("keys", "show", "--home", home, env={"LILYPAD_KEY_PASSWORD": PASSWORD})
    assert result.exit_code == 0, result.output
    assert identity.address in result.output
    wrong = _cli("keys", "show", "--home", home, env={"LILYPAD_KEY_PASSWORD": "nope"})
    assert wrong.exit_code == 1 and "wrong password" in wrong.output
    assert len(wrong.output.strip().splitlines()) == 1


def test_prompt_on_a_terminal_asks_twice_when_creating(monkeypatch):
    import getpass
    import sys

    monkeypatch.delenv("LILYPAD_KEY_PASSWORD", raising=False)
    monkeypatch.delenv("LILYPAD_KEY_PASSWORD_FILE", raising=False)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    answers = iter(["first", "second", "same", "same", "once", ""])
    monkeypatch.setattr(getpass, "getpass", lambda prompt: next(answers))
    with pytest.raises(KeystoreError, match="differ"):
        password_source(None, confirm=True)()
    assert password_source(None, confirm=True)().reveal() == b"same"
    assert password_source(None)().reveal() == b"once"
    with pytest.raises(KeystoreError, match="empty password"):
        password_source(None)()
