import json
import os
import stat

from typer.testing import CliRunner

from lilypad_p2p.cli import app
from lilypad_p2p.identity import KEY_FILE_NAME, Identity


def run(*args, env=None):
    return CliRunner().invoke(app, list(args), env=env)


def test_keys_new_creates_a_0600_keystore_under_home(tmp_path):
    home = tmp_path / "home"
    result = run("keys", "new", "--insecure-plaintext", "--home", str(home))
    assert result.exit_code == 0, result.output
    key_file = home / "keys" / KEY_FILE_NAME
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert Identity.load(home / "keys").address in result.output


def test_keys_new_refuses_to_overwrite(tmp_path):
    home = tmp_path / "home"
    run("keys", "new", "--insecure-plaintext", "--home", str(home))
    before = (home / "keys" / KEY_FILE_NAME).read_bytes()
    result = run("keys", "new", "--insecure-plaintext", "--home", str(home))
    assert result.exit_code == 1
    assert "refusing to overwrite" in result.output
    assert (home / "keys" / KEY_FILE_NAME).read_bytes() == before


def test_keys_show_json_has_public_parts_only(tmp_path):
    home = tmp_path / "home"
    run("keys", "new", "--insecure-plaintext", "--home", str(home))
    identity = Identity.load(home / "keys")
    result = run("keys", "show", "--home", str(home), "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown == {
        "peer_id": str(identity.peer_id),
        "address": identity.address,
        "sealing_public_key": identity.sealing_public_key.hex(),
        "keystore": str(home / "keys"),
        "encrypted": False,
    }
    key_file = json.loads((home / "keys" / KEY_FILE_NAME).read_text())
    for secret in (key_file["secp256k1_private_key"], key_file["x25519_private_key"]):
        assert secret not in result.output


def test_keys_show_text_and_home_from_environment(tmp_path):
    home = tmp_path / "envhome"
    env = {"LILYPAD_HOME": str(home)}
    assert run("keys", "new", "--insecure-plaintext", env=env).exit_code == 0
    result = run("keys", "show", env={"LILYPAD_HOME": str(home)})
    assert result.exit_code == 0, result.output
    assert str(Identity.load(home / "keys").peer_id) in result.output
    assert "16Uiu2" in result.output


def test_keys_show_without_keys_says_how_to_create_them(tmp_path):
    result = run("keys", "show", "--home", str(tmp_path / "empty"))
    assert result.exit_code == 1
    assert "keys new" in result.output


def test_keys_show_refuses_a_group_readable_key(tmp_path):
    home = tmp_path / "home"
    run("keys", "new", "--insecure-plaintext", "--home", str(home))
    os.chmod(home / "keys" / KEY_FILE_NAME, 0o640)
    result = run("keys", "show", "--home", str(home))
    assert result.exit_code == 1
    assert "chmod 600" in result.output


def test_home_defaults_to_dot_lilypad_p2p_in_the_user_home(tmp_path):
    env = {"HOME": str(tmp_path), "LILYPAD_HOME": None}
    assert run("keys", "new", "--insecure-plaintext", env=env).exit_code == 0
    assert (tmp_path / ".lilypad-p2p" / "keys" / KEY_FILE_NAME).exists()
