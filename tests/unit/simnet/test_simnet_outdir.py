"""What the simnet may write into (`up --out`, `export-compose --out`), and that a run removes a
previous run's output only once its checks passed (no anvil, no node: the run is stopped at
the point under test)."""

from pathlib import Path

import pytest
from rich.console import Console

import simnet._runner as runner
from simnet import ScenarioError, load_scenario, run_scenario
from simnet._outdir import (
    EXPORT_MARKER,
    RUN_MARKER,
    OutDirError,
    claim_export_dir,
    claim_run_dir,
)

SMOKE = Path(__file__).parents[3] / "simnet" / "scenarios" / "smoke.toml"


class Stop(Exception):
    """Stands for the world starting: the test stops the run there."""


@pytest.fixture
def no_images(monkeypatch):
    monkeypatch.setattr(runner, "build_module_images", lambda console: None)


def _previous_run(out: Path) -> Path:
    log = out / "nodes" / "provider-1" / "node.log"
    log.parent.mkdir(parents=True)
    log.write_text("the previous run\n")
    (out / "report.json").write_text("{}")
    (out / RUN_MARKER).write_text("")
    return log


def test_a_run_refuses_a_directory_it_did_not_write_and_deletes_nothing(tmp_path, monkeypatch,
                                                                        no_images):
    out = tmp_path / "mine"
    (out / "nodes").mkdir(parents=True)
    (out / "nodes" / "precious.txt").write_text("mine\n")
    monkeypatch.setattr(runner, "plan_nodes", lambda scenario: (_ for _ in ()).throw(
        ScenarioError("the plan is refused")))
    with pytest.raises(ScenarioError):
        run_scenario(load_scenario(SMOKE), out, Console(quiet=True))
    assert (out / "nodes" / "precious.txt").read_text() == "mine\n"


def test_a_previous_run_is_kept_when_the_checks_fail_and_replaced_once_they_pass(
        tmp_path, monkeypatch, no_images):
    out = tmp_path / "run"
    log = _previous_run(out)
    real_plan = runner.plan_nodes
    monkeypatch.setattr(runner, "plan_nodes", lambda scenario: (_ for _ in ()).throw(
        ScenarioError("the plan is refused")))
    with pytest.raises(ScenarioError, match="the plan is refused"):
        run_scenario(load_scenario(SMOKE), out, Console(quiet=True))
    assert log.read_text() == "the previous run\n"

    monkeypatch.setattr(runner, "plan_nodes", real_plan)
    monkeypatch.setattr(runner, "world_for", lambda *a, **k: (_ for _ in ()).throw(Stop()))
    with pytest.raises(Stop):
        run_scenario(load_scenario(SMOKE), out, Console(quiet=True))
    assert not log.exists() and not (out / "report.json").exists()


def test_a_new_empty_or_previous_directory_is_claimed_and_marked(tmp_path):
    assert not claim_run_dir(tmp_path / "new" / "run")
    assert (tmp_path / "new" / "run" / RUN_MARKER).is_file()
    assert claim_run_dir(tmp_path / "new" / "run") is False  # only the marker: nothing to replace
    _previous_run(tmp_path / "old")
    assert claim_run_dir(tmp_path / "old")


def test_a_run_from_before_the_marker_is_recognised_by_its_files_alone(tmp_path):
    out = tmp_path / "old"
    (out / "nodes" / "client-1").mkdir(parents=True)
    (out / "nodes" / "zygote.log").write_text("")
    (out / "report.json").write_text("{}")
    (out / "nodes.png").write_bytes(b"")
    assert claim_run_dir(out)
    (tmp_path / "user" / "nodes" / "notes").mkdir(parents=True)
    with pytest.raises(OutDirError, match="did not write"):
        claim_run_dir(tmp_path / "user")


@pytest.mark.parametrize(("claim", "other"), [(claim_run_dir, EXPORT_MARKER),
                                              (claim_export_dir, RUN_MARKER)])
def test_an_export_and_a_run_do_not_share_a_directory(tmp_path, claim, other):
    (tmp_path / other).write_text("")
    with pytest.raises(OutDirError, match="holds the output of"):
        claim(tmp_path)


def test_an_export_from_before_the_marker_is_recognised_by_its_compose_file(tmp_path):
    (tmp_path / "docker-compose.yml").write_text("# lilypad-simnet export-compose: scenario x\n")
    (tmp_path / "nodes").mkdir()
    assert claim_export_dir(tmp_path)
    (tmp_path / "docker-compose.yml").write_text("services: {}\n")
    (tmp_path / EXPORT_MARKER).unlink()
    with pytest.raises(OutDirError, match="did not write"):
        claim_export_dir(tmp_path)
