"""The wheel builds, installs into a clean virtualenv, and its `lilypad-p2p node` runs."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from lilypad_p2p.control import ControlError, call

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[3]


def tracked_copy(destination: Path) -> Path:
    """The working tree's tracked files (with their uncommitted changes), so that building
    leaves nothing in the checkout."""
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, names):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def test_wheel_installs_and_runs_a_node(tmp_path: Path) -> None:
    source = tracked_copy(tmp_path / "src")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "-o", str(tmp_path / "dist"),
                    str(source)], check=True, capture_output=True, timeout=600)
    (wheel,) = (tmp_path / "dist").glob("lilypad_p2p-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert "lilypad_p2p/py.typed" in names
    assert "lilypad_p2p/chain/artifacts/LilypadSettlement.json" in names
    assert not any(name.startswith("tests/") for name in names)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-c",
                    str(ROOT / "requirements.lock"), str(wheel)],
                   check=True, capture_output=True, timeout=900)
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import importlib.util, lilypad_p2p; print(lilypad_p2p.__file__); "
         "print(importlib.util.find_spec('matplotlib') is None)"],
        check=True, capture_output=True, text=True, cwd=tmp_path,
    ).stdout.split()
    assert where[0].startswith(str(venv)) and where[1] == "True"  # plots are an extra

    home = tmp_path / "home"
    node = subprocess.Popen(
        [str(venv / "bin" / "lilypad-p2p"), "node", "--home", str(home), "--solver",
         "--listen", "/ip4/127.0.0.1/tcp/0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path,
    )
    try:
        status = None
        deadline = time.monotonic() + 60
        while status is None and time.monotonic() < deadline:
            assert node.poll() is None, node.stderr.read().decode()[-3000:]
            try:
                status = call(home, "status")
            except (ControlError, OSError):
                time.sleep(0.5)
        assert status is not None and status["roles"] == ["solver"]
    finally:
        node.send_signal(signal.SIGINT)
        assert node.wait(30) == 0
