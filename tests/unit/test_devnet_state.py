"""`devnet status|down|up` read `<dir>/devnet.json`, which anyone can edit and a reboot makes
stale: only the processes the devnet started are shown up, signalled or taken for a devnet
still up; a PID that now names another process counts as gone and is left alone (real `sleep`
processes stand in for the devnet's)."""

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lilypad_p2p.cli import app

STOP_WAIT_S = 5


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["devnet", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def _default_sigint() -> None:
    # A node handles SIGINT (`down` sends it) even when started from a shell that ignores it,
    # as a background job's does; a stand-in would inherit the ignoring and wait out `down`.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def sleeps() -> Iterator[list[subprocess.Popen[bytes]]]:
    started = [subprocess.Popen(["sleep", "300"], preexec_fn=_default_sigint)
               for _ in range(2)]
    yield started
    for process in started:
        process.kill()
        process.wait()


def start_ticks(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19])


def write_state(directory: Path, anvil: dict, nodes: dict) -> None:
    directory.mkdir(exist_ok=True)
    (directory / "devnet.json").write_text(json.dumps({
        "directory": str(directory), "rpc_url": "http://127.0.0.1:1", "contract": "0x0",
        "mediator": "0x0", "anvil": anvil, "nodes": nodes}))


def test_pids_the_devnet_did_not_start_are_shown_down_and_never_signalled(tmp_path, sleeps):
    # The PIDs are live, but their start times are not those written: another's processes,
    # as after a reboot or in a hand-edited file.
    chain, node = ({"pid": s.pid, "started": start_ticks(s.pid) + 1} for s in sleeps)
    write_state(tmp_path / "devnet", chain, {"client": node})
    code, shown = run("status", "--dir", str(tmp_path / "devnet"))
    assert code == 0 and "DOWN" in shown and " up " not in shown and ": up" not in shown, shown
    code, said = run("down", "--dir", str(tmp_path / "devnet"))
    assert code == 0 and "0 processes stopped" in said, said
    assert all(s.poll() is None for s in sleeps)  # still running: never signalled


def test_the_devnets_own_processes_are_up_and_stopped_by_down(tmp_path, sleeps):
    chain, node = ({"pid": s.pid, "started": start_ticks(s.pid)} for s in sleeps)
    write_state(tmp_path / "devnet", chain, {"client": node})
    code, shown = run("status", "--dir", str(tmp_path / "devnet"))
    assert code == 0 and "DOWN" not in shown, shown
    code, said = run("down", "--dir", str(tmp_path / "devnet"))
    assert code == 0 and "2 processes stopped" in said, said
    assert all(s.wait(STOP_WAIT_S) is not None for s in sleeps)


def test_up_says_already_up_only_for_its_own_process_with_a_command_to_paste(tmp_path, sleeps):
    directory = tmp_path / "my devnet"
    write_state(directory, {"pid": sleeps[0].pid, "started": start_ticks(sleeps[0].pid)}, {})
    code, said = run("up", "--dir", str(directory))
    assert code == 1, said
    assert f"`lilypad-p2p devnet down --dir '{directory}'` first" in said, said


@pytest.mark.parametrize("command", ["up", "status", "down"])
@pytest.mark.parametrize("under", ["", "sub"])
def test_a_dir_that_is_a_file_is_one_line_naming_dir(tmp_path, command, under):
    (tmp_path / "a-file").write_text("")
    code, said = run(command, "--dir", str(tmp_path / "a-file" / under))
    assert code == 1 and said.count("\n") == 1, said
    assert "is a file or lies under one: give --dir a directory" in said, said


@pytest.mark.parametrize("text", [
    "not json",
    "[1]",
    '{"directory": 1, "rpc_url": 2, "contract": "x", "mediator": "y", "anvil": "abc", '
    '"nodes": []}',
    '{"directory": "d", "rpc_url": "u", "contract": "x", "mediator": "y", '
    '"anvil": {"pid": "1", "started": 1}, "nodes": {}}',
    '{"directory": "d", "rpc_url": "u", "contract": "x", "mediator": "y", '
    '"anvil": {"pid": 0, "started": 1}, "nodes": {}}',
    '{"directory": "d", "rpc_url": "u", "contract": "x", "mediator": "y", '
    '"anvil": {"pid": 9, "started": 1}, "nodes": []}',
])
@pytest.mark.parametrize("command", ["up", "status", "down"])
def test_a_damaged_or_hand_edited_state_is_one_line(tmp_path, text, command):
    (tmp_path / "devnet.json").write_text(text)
    code, said = run(command, "--dir", str(tmp_path))
    assert code == 1 and said.count("\n") == 1, said
    assert "devnet.json is damaged (" in said and "then delete it" in said, said
