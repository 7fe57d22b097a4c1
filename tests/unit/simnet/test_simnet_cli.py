"""`lilypad-simnet` refuses bad input in one line (exit status 2, no traceback) before it
starts or writes anything, says where an unfinished run left its files, and never deletes or
writes over files it did not write."""

import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

import simnet._runner as runner
from simnet import ScenarioError
from simnet._outdir import RUN_MARKER
from simnet.cli import app

SCENARIOS = Path(__file__).parents[3] / "simnet" / "scenarios"
SMOKE = str(SCENARIOS / "smoke.toml")


def _refused(args: list[str]) -> str:
    """The one line `lilypad-simnet *args` refuses with (exit status 2, no traceback)."""
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize(("args", "needle"), [
    (["--nodes", "300"], "5 to 200"),
    (["--subnet", "notasubnet"], "--subnet notasubnet"),
    (["--subnet", "10.0.0.0/30"], "has room for 0 nodes"),
    (["--subnet", "8.8.8.0/24"], "not a private IPv4 range"),
    (["--scenario", str(SCENARIOS / "partition.toml")], "only `lilypad-simnet up` runs"),
    (["--scenario", SMOKE, "--nodes", "4"], "5 to 200"),
])
def test_export_compose_refuses_bad_input_in_one_line_and_writes_nothing(tmp_path, args,
                                                                          needle):
    out = tmp_path / "project"
    assert needle in _refused(["export-compose", "--out", str(out), *args])
    assert not out.exists()


def test_export_compose_refuses_a_directory_it_did_not_write(tmp_path):
    home = tmp_path / "node-home"
    home.mkdir()
    (home / "config.toml").write_text("roles = ['provider']\n")
    assert "holds files the simnet did not write" in _refused(
        ["export-compose", "--out", str(home), "--scenario", SMOKE, "--nodes", "5"])
    assert [p.name for p in home.iterdir()] == ["config.toml"]


def test_export_compose_rewrites_its_own_export_quietly_keeping_the_keys(tmp_path, caplog):
    out = tmp_path / "project"
    args = ["export-compose", "--out", str(out), "--scenario", SMOKE, "--nodes", "5"]
    assert CliRunner().invoke(app, args).exit_code == 0
    key = (out / "nodes" / "client-1" / "keys").iterdir().__next__().read_bytes()
    caplog.clear()
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    # Reloading a plaintext key logs the node's warning; with no logging set up, Python
    # printed its bare event name once per node.
    assert "keys.plaintext" not in caplog.text + again.stderr
    assert (out / "nodes" / "client-1" / "keys").iterdir().__next__().read_bytes() == key


def test_a_run_directory_is_not_an_export_directory(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / RUN_MARKER).write_text("")
    assert "lilypad-simnet up" in _refused(["export-compose", "--out", str(out)])


@pytest.mark.parametrize("make", ["file", "proc"])
def test_up_refuses_an_out_that_is_a_file_or_cannot_be_made(tmp_path, make):
    out = tmp_path / "file" if make == "file" else Path("/proc/simnet-no-such-dir")
    if make == "file":
        out.write_text("mine\n")
    assert "--out" in _refused(["up", "--scenario", SMOKE, "--out", str(out)])
    if make == "file":
        assert out.read_text() == "mine\n"


def test_up_refuses_a_directory_it_did_not_write_and_deletes_nothing(tmp_path, monkeypatch):
    out = tmp_path / "mine"
    (out / "nodes").mkdir(parents=True)
    (out / "nodes" / "precious.txt").write_text("mine\n")
    monkeypatch.setattr(runner, "run_scenario", lambda *a, **k: pytest.fail("ran"))
    assert "holds files the simnet did not write" in _refused(
        ["up", "--scenario", SMOKE, "--out", str(out)])
    assert (out / "nodes" / "precious.txt").read_text() == "mine\n"


@pytest.mark.parametrize(("lines", "needle"), [
    ("[node]\nmatch_timeout_s = 0\n", "[node] match_timeout_s: 0 is out of range"),
    ("node_count = 6\n", "unknown key 'node_count'"),
    ("[workloads]\njobs = 3\n", "unknown table [workloads] (did you mean [workload]?)"),
])
def test_up_refuses_a_bad_scenario_before_anything_starts(tmp_path, monkeypatch, lines, needle):
    path = tmp_path / "bad.toml"
    path.write_text(lines)
    monkeypatch.setattr(runner, "run_scenario", lambda *a, **k: pytest.fail("ran"))
    assert needle in _refused(["up", "--scenario", str(path), "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()


def test_an_interrupted_run_in_a_temp_dir_says_where_its_files_are(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))

    def interrupted(scenario, out_dir, console, *, forked):
        (out_dir / "nodes").mkdir()
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_scenario", interrupted)
    result = CliRunner().invoke(app, ["up", "--scenario", "smoke"])
    assert result.exit_code == 130
    (left,) = tmp_path.iterdir()
    assert left.name.startswith("simnet-smoke-")
    assert str(left) in result.output and "remove it" in result.output


def test_a_failed_run_that_wrote_nothing_leaves_no_temp_dir_and_points_at_no_logs(tmp_path,
                                                                                  monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))

    def failed(*args, **kwargs):
        raise ScenarioError("no metrics port")

    monkeypatch.setattr(runner, "run_scenario", failed)
    line = _refused(["up", "--scenario", "smoke"])
    assert line == "error: no metrics port" and not list(tmp_path.iterdir())


def test_reusing_a_previous_runs_directory_says_it_replaces_its_report(tmp_path, monkeypatch):
    out = tmp_path / "run"
    (out / "nodes" / "provider-1").mkdir(parents=True)
    (out / "report.json").write_text("{}")
    monkeypatch.setattr(runner, "run_scenario",
                        lambda *a, **k: (_ for _ in ()).throw(ScenarioError("stop")))
    result = CliRunner().invoke(app, ["up", "--scenario", "smoke", "--out", str(out)])
    assert result.exit_code == 2
    assert "holds a previous run" in result.output and "report.json" in result.output
    assert (out / RUN_MARKER).is_file()


def test_the_scenario_option_takes_a_shipped_name_and_its_help_fits_80_columns():
    result = CliRunner().invoke(app, ["up", "--help"], env={"COLUMNS": "80"},
                                terminal_width=80)
    assert result.exit_code == 0
    assert "[default: baseline]" in result.output and "…" not in result.output
    assert "simnet/scenarios/" in result.output and "smoke" in result.output
    assert "no scenario 'smok'" in _refused(["up", "--scenario", "smok"])


@pytest.fixture
def default_sighup():
    """SIGHUP as a terminal leaves it (the tests may run under nohup)."""
    before = signal.signal(signal.SIGHUP, signal.SIG_DFL)
    yield
    signal.signal(signal.SIGHUP, before)


def test_sighup_ends_a_run_as_ctrl_c_does_and_later_signals_cannot_cut_its_teardown(
        default_sighup):
    with runner.signals_as_interrupt():
        for signum in (signal.SIGHUP, signal.SIGTERM):
            assert callable(signal.getsignal(signum))
        handler = signal.getsignal(signal.SIGHUP)
        with pytest.raises(KeyboardInterrupt):
            handler(signal.SIGHUP, None)
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    assert signal.getsignal(signal.SIGHUP) == signal.SIG_DFL


def test_a_run_under_nohup_still_outlives_its_terminal(default_sighup):
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    with runner.signals_as_interrupt():
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
        assert callable(signal.getsignal(signal.SIGTERM))
    assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
