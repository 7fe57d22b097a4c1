import json

import pytest
from typer.testing import CliRunner

from lilypad_p2p.cli import app
from lilypad_p2p.exec import DockerEngine, DockerUnavailable
from lilypad_p2p.testing import require_real

pytestmark = pytest.mark.docker


def test_modules_build_is_idempotent_and_list_shows_built_images():
    try:
        DockerEngine.connect().close()
    except DockerUnavailable as exc:
        require_real("docker", str(exc))
    runner = CliRunner()
    first = runner.invoke(app, ["modules", "build"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, ["modules", "build"])
    assert second.exit_code == 0, second.output
    assert "busybox: sha256:" in second.output and "already present" in second.output
    listed = runner.invoke(app, ["modules", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    modules = {row["name"]: row for row in json.loads(listed.output)}
    assert {"hash", "wordcount", "random"} <= set(modules)
    assert modules["hash"]["built"] is True
    assert modules["hash"]["image_id"].startswith("sha256:")
    assert modules["random"]["deterministic"] is False
