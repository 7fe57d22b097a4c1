"""Where a module definition comes from: a file, a directory, or a git repository at a commit.

    PATH                          a TOML definition, or a directory holding `module.toml`
    git+URL@COMMIT[#PATH]         `PATH` (default `module.toml`) in the repository at URL, at
                                  exactly COMMIT (40 hex digits: a branch or tag could move)

This blocks (git runs as a subprocess); callers in trio use `trio.to_thread.run_sync`.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path, PurePosixPath

from lilypad_p2p.exec._definition import load_definition_file, load_definition_text
from lilypad_p2p.exec._errors import BadDefinition, UnreadableDefinition
from lilypad_p2p.exec._modules import Module

DEFINITION_FILE = "module.toml"
GIT_TIMEOUT_S = 120.0
_GIT_SOURCE = re.compile(r"^git\+(?P<url>.+)@(?P<commit>[0-9a-fA-F]{40})(?:#(?P<path>[^#]+))?$")


def module_from_source(source: str, *, timeout_s: float = GIT_TIMEOUT_S) -> Module:
    """The module `source` defines (see the module docstring for the forms).

    Raises:
        BadDefinition: the source cannot be read, or its definition is invalid.
    """
    if source.startswith("git+"):
        return _from_git(source, timeout_s)
    path = Path(source)
    if path.is_dir():
        path = path / DEFINITION_FILE
    return load_definition_file(path)


def _from_git(source: str, timeout_s: float) -> Module:
    parsed = _GIT_SOURCE.match(source)
    if parsed is None:
        raise BadDefinition(
            f"{source!r} is not git+URL@COMMIT[#PATH] with a full 40-hex-digit commit"
        )
    url, commit = parsed["url"], parsed["commit"].lower()
    inside = PurePosixPath(parsed["path"] or DEFINITION_FILE)
    if inside.is_absolute() or ".." in inside.parts:
        raise BadDefinition(f"{source!r}: the path must stay inside the repository")
    with tempfile.TemporaryDirectory(prefix="lilypad-module-") as checkout:
        _git(["clone", "--quiet", "--no-checkout", "--", url, checkout], timeout_s, source)
        # `git show COMMIT:PATH` reads the file at that commit without a work tree.
        shown = _git(
            ["-C", checkout, "show", f"{commit}:{inside.as_posix()}"], timeout_s, source
        )
    return load_definition_text(shown, f"{inside} at {url}@{commit}")


def _git(args: list[str], timeout_s: float, source: str) -> str:
    try:
        done = subprocess.run(
            ["git", "-c", "protocol.file.allow=always", *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/local/bin:/usr/bin:/bin"},
        )
    except FileNotFoundError as exc:
        raise UnreadableDefinition("git is not installed: apt-get install git") from exc
    except subprocess.TimeoutExpired as exc:
        raise UnreadableDefinition(f"{source}: git took longer than {timeout_s:g} s") from exc
    if done.returncode != 0:
        # git's first `fatal:` line says what went wrong; advice lines follow it.
        lines = done.stderr.strip().splitlines()
        reason = next((line for line in lines if line.startswith("fatal:")),
                      lines[-1] if lines else "(no message)")
        raise UnreadableDefinition(f"{source}: git {args[0] if args[0] != '-C' else args[2]} "
                                   f"failed: {reason}")
    return done.stdout
