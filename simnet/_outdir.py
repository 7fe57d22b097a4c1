"""The directories the simnet writes into (`up --out`, `export-compose --out`): only one it
made, an empty one, or one a previous run (or export) of the same command wrote. Each gets a
marker file, so a later command knows the directory is the simnet's to replace; anything else
is refused, because replacing a run's node homes deletes whatever is in DIR/nodes."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

from simnet._scenario import ScenarioError

RUN_MARKER = ".lilypad-simnet-run"
EXPORT_MARKER = ".lilypad-simnet-compose"
# What `up` writes into its directory: a run's output from before the marker existed is
# recognised by holding nothing else.
RUN_OUTPUT_NAMES = frozenset({"nodes", "report.json", "netns-prefix", "registry-module",
                              "latencies.png", "deals_and_gas.png", "nodes.png",
                              "jobs_per_provider.png"})
# A previous run's output that a new run replaces (its node homes belong to an anvil that is
# gone: their accounts would not be funded again on the new chain).
RUN_REPLACED = ("nodes", "registry-module", "netns-prefix", "report.json", "latencies.png",
                "deals_and_gas.png", "nodes.png", "jobs_per_provider.png")
# What a run's nodes/ holds: the node homes (named by `plan_nodes`) and the logs of the zygote
# and of the namespaced anvil.
NODE_HOME = re.compile(r"(provider|solver|mediator|client)-[0-9]+")
NODES_DIR_FILES = frozenset({"zygote.log", "anvil.log"})
COMPOSE_HEADER = "# lilypad-simnet export-compose:"


class OutDirError(ScenarioError):
    """An output directory the simnet may not write into (the user's, a file, unwritable)."""


def _legacy_run(out_dir: Path, entries: list[Path]) -> bool:
    """Whether `entries` are what a run wrote before runs were marked: only a run's files, and
    nodes/ (if there) holds only node homes by the names the simnet gives them."""
    if not all(e.name in RUN_OUTPUT_NAMES for e in entries):
        return False
    nodes = out_dir / "nodes"
    if nodes.is_symlink() or (nodes.exists() and not nodes.is_dir()):
        return False
    try:
        homes = list(nodes.iterdir()) if nodes.exists() else []
    except OSError:
        return False
    return all((NODE_HOME.fullmatch(h.name) and h.is_dir() and not h.is_symlink())
               or h.name in NODES_DIR_FILES for h in homes) and (
        bool(homes) or (out_dir / "report.json").is_file())


def _legacy_export(out_dir: Path, entries: list[Path]) -> bool:
    compose = out_dir / "docker-compose.yml"
    try:
        with compose.open(errors="replace") as file:
            return file.readline().startswith(COMPOSE_HEADER)
    except OSError:
        return False


def _claim(out_dir: Path, marker: str, other_marker: str, what: str,
           legacy: Callable[[Path, list[Path]], bool]) -> bool:
    """Make `out_dir` the simnet's for `what` (created, or empty, or a previous one's), marked;
    whether it holds a previous one's output. Raises OutDirError, one line."""
    flag = "--out"
    if out_dir.exists() and not out_dir.is_dir():
        raise OutDirError(f"{flag} {out_dir} is not a directory: pass a new directory, an "
                          f"empty one, or a previous {what}'s")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        entries = list(out_dir.iterdir())
    except OSError as exc:
        raise OutDirError(f"cannot use {flag} {out_dir} ({exc.strerror or exc}): pass a "
                          "directory you can create and write") from None
    names = {e.name for e in entries}
    if other_marker in names:
        other = "export-compose" if other_marker == EXPORT_MARKER else "up"
        raise OutDirError(f"{flag} {out_dir} holds the output of `lilypad-simnet {other}`, "
                          f"not of a {what}: pass another directory")
    output = [e for e in entries if e.name != marker]
    previous = bool(output) and (marker in names or legacy(out_dir, output))
    if output and not previous:
        raise OutDirError(f"{flag} {out_dir} holds files the simnet did not write: pass a new "
                          f"directory, an empty one, or a previous {what}'s")
    try:
        (out_dir / marker).write_text(
            f"lilypad-simnet wrote this directory ({what}); the next {what} with it as --out "
            "replaces what it wrote\n")
    except OSError as exc:
        raise OutDirError(f"cannot write in {flag} {out_dir} ({exc.strerror or exc}): pass "
                          "a directory you can write") from None
    return previous


def claim_run_dir(out_dir: Path) -> bool:
    """`out_dir` for `up` (see `_claim`); True: it holds a previous run, which this replaces."""
    return _claim(out_dir, RUN_MARKER, EXPORT_MARKER, "run", _legacy_run)


def claim_export_dir(out_dir: Path) -> bool:
    """`out_dir` for `export-compose`; True: it holds a previous export (its keys are kept)."""
    return _claim(out_dir, EXPORT_MARKER, RUN_MARKER, "export", _legacy_export)


def clear_previous_run(out_dir: Path) -> None:
    """Remove what a previous run wrote into `out_dir` (claimed: the marker says it is ours)."""
    if not (out_dir / RUN_MARKER).is_file():
        raise OutDirError(f"--out {out_dir} is not a directory the simnet claimed")
    for name in RUN_REPLACED:
        path = out_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def drop_unplanned_homes(out_dir: Path, planned: set[str]) -> None:
    """Remove the node homes a previous export of `out_dir` made for nodes no longer planned
    (an export with fewer nodes). Only directories named as the simnet names node homes go."""
    if not (out_dir / EXPORT_MARKER).is_file():
        raise OutDirError(f"--out {out_dir} is not a directory the simnet claimed")
    nodes = out_dir / "nodes"
    if not nodes.is_dir() or nodes.is_symlink():
        return
    for home in list(nodes.iterdir()):
        if (NODE_HOME.fullmatch(home.name) and home.name not in planned
                and home.is_dir() and not home.is_symlink()):
            shutil.rmtree(home)


def holds_output(out_dir: Path) -> bool:
    """Whether `out_dir` holds anything but the marker (a failed run's logs, say)."""
    try:
        return any(e.name not in (RUN_MARKER, EXPORT_MARKER) for e in out_dir.iterdir())
    except OSError:
        return False
