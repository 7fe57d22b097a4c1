"""`lilypad-p2p keys ...` against what an operator's disk can hold: directories, pipes and links
where files belong, half-present keystores, damaged key files, a node still running. Each is
refused with one line and exit code 1, quickly, and changes no key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from eth_account import Account
from typer.testing import CliRunner

from lilypad_p2p.cli import app
from lilypad_p2p.identity import KEY_FILE_NAME, SEALING_KEY_FILE_NAME, Identity, Password

PASSWORD = "hostile files"
FAST_N = 1 << 10  # the reader follows the file's N; tests need not pay 2^18
# Generous for a CLI start; a hang (a FIFO read, minutes of KDF) runs past it.
CLI_TIMEOUT_S = 30


def _cli(*args: str, process: bool = False) -> SimpleNamespace:
    """The CLI in this process (the suite stays fast), or as its own `process` where the test
    needs one: a read that could hang runs under a timeout, and Python's last-resort log
    handler, which prints warnings when nothing is set up, exists only there."""
    if not process:
        unset = {k: None for k in os.environ if k.startswith("LILYPAD_")}
        result = CliRunner().invoke(app, list(args), env=unset)
        return SimpleNamespace(returncode=result.exit_code, stderr=result.stderr)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LILYPAD_")}
    done = subprocess.run([sys.executable, "-m", "lilypad_p2p.cli", *args], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=CLI_TIMEOUT_S)
    return SimpleNamespace(returncode=done.returncode, stderr=done.stderr)


def _one_line_error(result: SimpleNamespace, *needles: str) -> str:
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _password_file(tmp_path: Path) -> Path:
    path = tmp_path / "password"
    path.write_text(PASSWORD + "\n")
    os.chmod(path, 0o600)
    return path


def _encrypted_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    Identity.generate().save(home / "keys", Password(PASSWORD), scrypt_n=FAST_N)
    return home


def _contents(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())
            if path.is_file()}


@pytest.mark.parametrize("kind", ["directory", "fifo", "device"])
def test_a_password_file_that_is_not_a_file_is_one_line(tmp_path, kind):
    home = _encrypted_home(tmp_path)
    target = tmp_path / "not-a-file"
    if kind == "directory":
        target.mkdir()
    elif kind == "fifo":
        os.mkfifo(target, 0o600)  # nobody writes to it: reading it would wait forever
    else:
        target = Path("/dev/zero")
    line = _one_line_error(_cli("keys", "show", "--home", str(home), "--password-file",
                                str(target), process=kind == "fifo"), str(target))
    assert ("is a directory" if kind == "directory" else "not a regular file") in line


def test_a_key_file_that_is_a_directory_is_one_line(tmp_path):
    home = tmp_path / "home"
    (home / "keys" / KEY_FILE_NAME).mkdir(parents=True)
    _one_line_error(_cli("keys", "show", "--home", str(home), "--password-file",
                         str(_password_file(tmp_path))),
                    f"key file {home / 'keys' / KEY_FILE_NAME} is a directory")


def test_a_symlinked_password_file_is_refused_as_such(tmp_path):
    home = _encrypted_home(tmp_path)
    link = tmp_path / "link"
    link.symlink_to(_password_file(tmp_path))
    _one_line_error(_cli("keys", "show", "--home", str(home), "--password-file", str(link)),
                    f"password file {link} is a symbolic link", "give the file itself")


@pytest.mark.parametrize("node_key", ["absent", "dangling symlink"])
def test_keys_new_never_replaces_a_sealing_key(tmp_path, node_key):
    keys = _encrypted_home(tmp_path) / "keys"
    (keys / KEY_FILE_NAME).unlink()
    if node_key == "dangling symlink":
        (keys / KEY_FILE_NAME).symlink_to(tmp_path / "gone")
    sealing = (keys / SEALING_KEY_FILE_NAME).read_bytes()
    _one_line_error(_cli("keys", "new", "--home", str(keys.parent), "--password-file",
                         str(_password_file(tmp_path))), "refusing to overwrite")
    assert (keys / SEALING_KEY_FILE_NAME).read_bytes() == sealing
    assert (keys / KEY_FILE_NAME).exists() is False


def test_keys_new_refuses_before_asking_for_a_password(tmp_path):
    keys = _encrypted_home(tmp_path) / "keys"
    (keys / KEY_FILE_NAME).unlink()
    (keys / SEALING_KEY_FILE_NAME).rename(keys / "moved")
    (keys / SEALING_KEY_FILE_NAME).symlink_to(tmp_path / "gone")
    # No password is given: the refusal names the key, not the missing password.
    _one_line_error(_cli("keys", "new", "--home", str(keys.parent), "--insecure-plaintext"),
                    str(keys / SEALING_KEY_FILE_NAME), "refusing to overwrite")
    _one_line_error(_cli("keys", "new", "--home", str(keys.parent)), "refusing to overwrite")
    assert not (keys / KEY_FILE_NAME).exists() and not (keys / KEY_FILE_NAME).is_symlink()


def test_missing_password_errors_name_only_the_commands_own_options(tmp_path):
    home = tmp_path / "home"
    Identity.generate().save(home / "keys")
    line = _one_line_error(_cli("keys", "encrypt", "--home", str(home)), "--password-file")
    assert "--insecure-plaintext" not in line
    _one_line_error(_cli("keys", "new", "--home", str(tmp_path / "fresh")),
                    "--password-file", "--insecure-plaintext")


@pytest.mark.parametrize(
    ("kdf", "damage", "reason"),
    [
        pytest.param("pbkdf2", {"c": 10**12}, "pbkdf2 c = 1000000000000 is over", id="pbkdf2 c"),
        pytest.param("pbkdf2", {"prf": "hmac-md5"}, "prf is not hmac-sha256", id="pbkdf2 prf"),
        pytest.param("scrypt", {"r": 10**6}, "n*r*p = 1024*1000000*1 is over", id="scrypt r"),
        pytest.param("scrypt", {"p": 10**4}, "n*r*p = 1024*8*10000 is over", id="scrypt p"),
        pytest.param("scrypt", {"n": 3}, "n = 3 is not a power of two", id="scrypt n"),
        pytest.param("scrypt", {"dklen": 10**9}, "dklen is 1000000000, not 32", id="dklen"),
        pytest.param("scrypt", {"salt": "not hex"}, "kdfparams salt is not hex", id="salt"),
        pytest.param("scrypt", {"n": "1024"}, "scrypt n is not a positive integer", id="n text"),
    ],
)
def test_damaged_kdf_parameters_are_refused_before_deriving(tmp_path, kdf, damage, reason):
    home = _encrypted_home(tmp_path)
    key_file = home / "keys" / KEY_FILE_NAME
    document = Account.encrypt(os.urandom(32), PASSWORD, kdf=kdf,
                               iterations=1000 if kdf == "pbkdf2" else FAST_N)
    document["crypto"]["kdfparams"].update(damage)
    key_file.write_text(json.dumps(document))
    started = time.monotonic()
    _one_line_error(_cli("keys", "show", "--home", str(home), "--password-file",
                         str(_password_file(tmp_path))),
                    f"{key_file} is corrupt: its ", reason, "restore it from your backup")
    assert time.monotonic() - started < CLI_TIMEOUT_S / 2


def _hold_home(home: Path) -> subprocess.Popen[str]:
    """A process holding `home` as a running node does (its lock), until its stdin closes."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from pathlib import Path; "
         "from lilypad_p2p.home import HomeLock; HomeLock.acquire(Path(sys.argv[1])); "
         "print('held', flush=True); sys.stdin.read()", str(home)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    return holder


def test_rotate_is_refused_while_the_node_runs(tmp_path):
    home = _encrypted_home(tmp_path)
    before = _contents(home / "keys")
    holder = _hold_home(home)
    try:
        _one_line_error(_cli("keys", "rotate", "--home", str(home), "--password-file",
                             str(_password_file(tmp_path)), "--rpc", "http://127.0.0.1:1",
                             "--contract", "0x" + "11" * 20),
                        f"PID {holder.pid}", "stop it first")
    finally:
        holder.communicate("", timeout=CLI_TIMEOUT_S)
    assert _contents(home / "keys") == before
    assert not (home / "keys" / "next").exists()


def test_rotate_without_a_chain_writes_no_key(tmp_path):
    home = _encrypted_home(tmp_path)
    before = _contents(home / "keys")
    _one_line_error(_cli("keys", "rotate", "--home", str(home), "--password-file",
                         str(_password_file(tmp_path))), "no chain", "--rpc")
    assert _contents(home / "keys") == before
    assert not (home / "keys" / "next").exists()
