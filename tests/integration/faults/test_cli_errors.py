"""Every user-facing failure of the real CLI is one line on stderr that names the setting, file
or flag and what to do, with a non-zero exit code: no traceback."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

CLI_TIMEOUT_S = 60
REPO = Path(__file__).resolve().parents[3]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LILYPAD_")}
    return subprocess.run([sys.executable, "-m", "lilypad_p2p.cli", *args], env=env,
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S)


def _one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert result.returncode != 0, result
    # Warnings (the plaintext-keystore one, as a line or as a JSON log line) are not the error.
    lines = [line for line in result.stderr.strip().splitlines()
             if not line.startswith(('{"ts"', "warning: "))]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_run_file_missing_or_a_directory(tmp_path):
    _one_line_error(_cli("run", "wordcount", "--file", str(tmp_path / "nope.txt"),
                         "--home", str(tmp_path)), "nope.txt", "no such file")
    _one_line_error(_cli("run", "wordcount", "--file", str(tmp_path), "--home", str(tmp_path)),
                    "is a directory")


def test_run_output_that_is_a_file_is_refused_before_posting(tmp_path):
    (tmp_path / "taken").write_text("")
    # No node runs on this home: the check comes before the job is posted (and paid for).
    _one_line_error(_cli("run", "wordcount", "--output", str(tmp_path / "taken" / "out"),
                         "--home", str(tmp_path)), "--output", "is not a directory")


def test_a_taken_port_for_gossip_or_metrics_is_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        _one_line_error(_cli("node", "--home", str(tmp_path / "a"), "--listen",
                             f"/ip4/127.0.0.1/tcp/{port}"), "listen (--listen)", "in use")
        _one_line_error(_cli("node", "--home", str(tmp_path / "b"), "--metrics-listen",
                             f"127.0.0.1:{port}"), "metrics_listen", "Address already in use")
    # Another node's listener: py-libp2p sets SO_REUSEPORT, which would let a second one bind.
    with socket.socket() as other_node:
        other_node.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        other_node.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other_node.bind(("0.0.0.0", 0))
        other_node.listen()
        port = other_node.getsockname()[1]
        _one_line_error(_cli("node", "--home", str(tmp_path / "c"), "--listen",
                             f"/ip4/127.0.0.1/tcp/{port}"), "listen (--listen)", "in use",
                        "another node on this machine?")


def test_home_that_is_a_file_and_config_that_is_a_directory(tmp_path):
    home_file = tmp_path / "home"
    home_file.write_text("")
    _one_line_error(_cli("node", "--home", str(home_file)), "--home", "not a directory")
    _one_line_error(_cli("status", "--home", str(home_file)), "--home", "not a directory")
    definition = str(REPO / "examples" / "modules" / "hello" / "module.toml")
    _one_line_error(_cli("modules", "add", definition, "--home", str(home_file)), "--home",
                    "not a directory")
    _one_line_error(_cli("modules", "image", str(REPO / "examples" / "modules" / "hello" / "image"),
                         "-o", str(home_file / "hello.tar")), "cannot write", "Not a directory")
    home = tmp_path / "h"
    (home / "config.toml").mkdir(parents=True)
    _one_line_error(_cli("node", "--home", str(home)), "config.toml", "Is a directory")


@pytest.mark.parametrize(("line", "needles"), [
    ("acceptance_window_s = 1.5", ("acceptance_window_s", "whole number")),
    ("acceptance_window_s = 1e30", ("acceptance_window_s",)),
    ("match_timeout_s = 100000000", ("match_timeout_s", "at most")),
    ("relay_circuit_bytes = -1", ("relay_circuit_bytes",)),
    ("consortium_threshold = 1.5", ("consortium_threshold",)),
])
def test_settings_checked_for_type_and_range(tmp_path, line, needles):
    (tmp_path / "config.toml").write_text(line + "\n")
    _one_line_error(_cli("node", "--home", str(tmp_path)), *needles)


@pytest.mark.parametrize(("flag", "addr", "needle"), [
    ("--listen", "/dns4/localhost/tcp/4103", "cannot be listened on"),
    ("--listen", "/ip4/127.0.0.1/tcp/4101/ws", "cannot be listened on"),
    ("--listen", "/ip4/127.0.0.1/udp/4101", "cannot be listened on"),
    ("--bootstrap", "/ip4/127.0.0.1/udp/4001/p2p/16Uiu2HAmJxkV7T1WGTHpjN3dXvWJ8Gq3tGzVTQRK7k6L6"
     "y7P1V9a", "not host, TCP port and peer"),
])
def test_addresses_a_node_cannot_use_are_refused(tmp_path, flag, addr, needle):
    _one_line_error(_cli("node", "--home", str(tmp_path), flag, addr), f"({flag})", needle)


def test_errors_name_real_flags(tmp_path):
    _one_line_error(_cli("node", "--home", str(tmp_path), "--check-rate", "2"),
                    "(--check-rate)")
    _one_line_error(_cli("node", "--home", str(tmp_path), "--market", "BAD NAME"), "(--market)")


def test_negative_deposit_and_unreachable_rpc(tmp_path):
    assert _cli("keys", "new", "--insecure-plaintext", "--home", str(tmp_path)).returncode == 0
    _one_line_error(_cli("deposit", "-1eth", "--home", str(tmp_path)), "-1eth")
    _one_line_error(_cli("balance", "--home", str(tmp_path), "--rpc", "http://127.0.0.1:1",
                         "--contract", "0x" + "11" * 20), "http://127.0.0.1:1 did not answer")


def test_corrupt_or_lost_database_is_refused_in_one_line(tmp_path):
    database = tmp_path / "node.sqlite"
    database.write_bytes(b"\xa5" * 8192)
    _one_line_error(_cli("node", "--client", "--home", str(tmp_path)), "is corrupt",
                    "restore it")
    database.write_bytes(b"")
    (tmp_path / "node.sqlite.history").write_text("deals were here\n")
    _one_line_error(_cli("node", "--client", "--home", str(tmp_path)), "is empty",
                    "node.sqlite.history")
    assert database.stat().st_size == 0


def test_simnet_scenario_errors_are_one_line(tmp_path):
    def simnet(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "simnet.cli", *args], capture_output=True,
                              text=True, timeout=CLI_TIMEOUT_S, cwd=REPO)

    (tmp_path / "typo.toml").write_text('[workload]\njobs = "x"\n')
    _one_line_error(simnet("up", "--scenario", str(tmp_path / "missing.toml")),
                    "cannot read scenario", "missing.toml")
    _one_line_error(simnet("up", "--scenario", str(tmp_path / "typo.toml")),
                    "[workload] jobs = 'x' is not int")
    _one_line_error(simnet("export-compose", "--out", str(tmp_path / "c"), "--nodes", "2"),
                    "a scenario runs 5 to 200")


def test_modules_add_and_list_with_bad_definitions(tmp_path):
    hello = (REPO / "examples" / "modules" / "hello" / "module.toml").read_text()
    bad_default = tmp_path / "bad-default.toml"
    bad_default.write_text(hello + '\n[params.extra]\nkind = "int"\ndefault = "5"\n')
    _one_line_error(_cli("modules", "add", str(bad_default), "--home", str(tmp_path)),
                    "[params.extra]: parameter 'default': expected int", "fix the definition")
    shadow = tmp_path / "hash.toml"
    shadow.write_text(hello.replace('name = "hello"', 'name = "hash"'))
    _one_line_error(_cli("modules", "add", str(shadow), "--home", str(tmp_path)),
                    "'hash' is the name of a shipped module")
    line = _one_line_error(_cli("modules", "add", "/dev/zero", "--home", str(tmp_path)),
                           "not a regular file")
    assert "fix the definition" not in line  # nothing in it to fix
    added = _cli("modules", "add", str(REPO / "examples/modules/hello"), "--home", str(tmp_path))
    assert added.returncode == 0, added.stderr
    changed = tmp_path / "changed.toml"
    changed.write_text(hello.replace("Hello", "Howdy"))
    _one_line_error(_cli("modules", "add", str(changed), "--home", str(tmp_path)),
                    "hello@", "is already here as", "raise the version")
    (tmp_path / "modules" / "bafkreiaaaa.module").write_bytes(b"junk")
    listed = _cli("modules", "list", "--home", str(tmp_path))
    assert listed.returncode == 0 and "hello@" in listed.stdout, listed.stderr
    assert "warning: stored module" in listed.stderr and "bafkreiaaaa" in listed.stderr


def _config_not_utf8(home: Path) -> None:
    (home / "config.toml").write_bytes(b'roles = ["provider"] # caf\xe9\n')


def _config_dangling(home: Path) -> None:
    (home / "config.toml").symlink_to(home / "moved.toml")


def _config_fifo(home: Path) -> None:
    os.mkfifo(home / "config.toml")  # nothing writes: a blocking read would hang the node


def _database_a_directory(home: Path) -> None:
    (home / "node.sqlite").mkdir()


@pytest.mark.parametrize(("damage", "needles"), [
    (_config_not_utf8, ("config.toml: not UTF-8 text", "save it as UTF-8")),
    (_config_dangling, ("a symbolic link to", "which does not exist")),
    (_config_fifo, ("config.toml: cannot read it", "not a regular file")),
    (_database_a_directory, ("node.sqlite: cannot open the database",)),
], ids=lambda value: getattr(value, "__name__", ""))
def test_damaged_home_files_are_one_line(tmp_path, damage, needles):
    damage(tmp_path)
    _one_line_error(_cli("node", "--client", "--home", str(tmp_path)), *needles)


@pytest.mark.parametrize(("content", "mode", "needle"), [
    ("short", 0o600, "at least 16 characters"),
    ("a-long-enough-token-for-sure", 0o644, "chmod 600"),
    (None, 0o700, "not a regular file"),
])
def test_a_bad_metrics_token_is_one_line(tmp_path, content, mode, needle):
    token = tmp_path / "metrics.token"
    if content is None:
        token.mkdir()
    else:
        token.write_text(content)
    token.chmod(mode)
    with socket.socket() as probe:  # a free port: the token is read before anything listens
        probe.bind(("0.0.0.0", 0))
        port = probe.getsockname()[1]
    _one_line_error(_cli("node", "--home", str(tmp_path), "--metrics-listen", f"0.0.0.0:{port}"),
                    "metrics_listen", "cannot use the token file", needle)
