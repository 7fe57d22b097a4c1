"""What `lilypad-p2p run` does with a deal's phase, and how it reads its input files: pure
decisions, kept out of the command so every phase has a tested answer."""

from __future__ import annotations

import enum
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lilypad_p2p.errors import LilypadError


class Next(enum.Enum):
    WAIT = "wait"  # the node is still driving the deal
    OUTPUTS = "outputs"  # a verified result is there: extract it
    FAIL = "fail"  # the deal ended without outputs for the user


@dataclass(frozen=True, slots=True)
class Verdict:
    next: Next
    message: str = ""
    logs: Path | None = None  # a failed run's logs, to show before the message


# Phases after which a verified result is in `result_path`.
_DONE = frozenset({"accepted", "settled"})
_FAILED = frozenset({"rejected", "timed_out", "cancelled"})


def _failed_run(deal: dict[str, Any], how: str) -> Verdict:
    """A failure result: the job failed by itself; it has logs, no outputs."""
    logs = str(deal.get("result_path") or "").removesuffix(".failure.json") + ".logs"
    return Verdict(Next.FAIL, f"the job failed on the provider ({deal['failure']}){how}; its "
                              f"logs: {logs}", Path(logs))


def judge(deal: dict[str, Any]) -> Verdict:
    """What `run` does next for `deal` (as the `deal` control call shows it)."""
    phase = deal["phase"]
    if phase in _DONE:
        if deal.get("failure"):
            return _failed_run(deal, ", which pays the provider for the run")
        return Verdict(Next.OUTPUTS)
    if phase in _FAILED:
        return Verdict(Next.FAIL, f"deal ended {phase}: "
                                  f"{deal.get('error') or 'see `lilypad-p2p deals`'}")
    if phase == "resolved":
        outcome = deal.get("outcome")
        if outcome == "PROVIDER_CORRECT" and deal.get("failure"):
            return _failed_run(deal, ", and the mediators failed it alike")
        if outcome == "PROVIDER_CORRECT" and deal.get("result_path"):
            return Verdict(Next.OUTPUTS, "the mediators upheld the provider's result")
        what = {
            "PROVIDER_WRONG": "the mediators found the provider's result wrong; the payment "
                              "was returned to you",
            "NON_DETERMINISTIC": "the mediators could not reproduce one result (the job is "
                                 "not deterministic); see `lilypad-p2p deals`",
            "PROVIDER_CORRECT": "the mediators upheld the provider's result, but this node "
                                "holds no outputs for it",
        }.get(str(outcome), "the deal was resolved on chain by another party; "
                            "see `lilypad-p2p deals`")
        return Verdict(Next.FAIL, f"deal resolved: {what}")
    return Verdict(Next.WAIT)


# How much of a failed run's logs `run` shows: the end, where the error usually is.
LOGS_TAIL_LINES = 20
LOGS_TAIL_READ_BYTES = 16 * 1024
LOGS_LINE_CHARS = 300


def logs_tail(path: Path) -> list[str]:
    """The last lines of a failed run's logs, fit for a terminal: the provider wrote them, so
    control characters (escape sequences included) are shown as U+FFFD and long lines are cut.
    Empty when the logs cannot be read."""
    try:
        with path.open("rb") as logs:
            size = logs.seek(0, os.SEEK_END)
            logs.seek(max(0, size - LOGS_TAIL_READ_BYTES))
            text = logs.read(LOGS_TAIL_READ_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return []
    lines = text.splitlines()
    if size > LOGS_TAIL_READ_BYTES and len(lines) > 1:
        lines = lines[1:]  # the first may start mid-line
    shown = []
    for line in lines[-LOGS_TAIL_LINES:]:
        line = "".join(c if c.isprintable() else " " if c == "\t" else "\ufffd" for c in line)
        shown.append(line if len(line) <= LOGS_LINE_CHARS else line[:LOGS_LINE_CHARS] + " …")
    return shown


def input_file_paths(paths: list[Path]) -> dict[str, str]:
    """Each `--file` as {name in /inputs: absolute path}, checked before anything is posted (the
    node reads the files itself). Raises LilypadError naming the file and what to do."""
    files: dict[str, str] = {}
    for path in paths:
        if path.is_dir():
            raise LilypadError(f"--file {path} is a directory: give a file (repeat --file "
                               "for several)")
        if path.name in files:
            raise LilypadError(f"--file {path}: two inputs are named {path.name!r}; rename one")
        if not path.exists():
            raise LilypadError(f"--file {path}: no such file")
        if not os.access(path, os.R_OK):
            raise LilypadError(f"--file {path}: cannot read it (permission denied)")
        files[path.name] = str(path.resolve())
    return files


def check_output_directory(output: Path) -> None:
    """Refuse an --output that cannot hold the outputs, before anything is posted and paid
    for: it must be a directory, or be creatable under the nearest one that exists."""
    existing = output
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise LilypadError(f"--output {output}: {existing} is not a directory; give a "
                           "directory (it is created if missing)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise LilypadError(f"--output {output}: cannot write in {existing} (permission denied)")


def private_member(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """tarfile's `data` filter, then owner-only modes: extraction sets each file's mode from
    the archive, whatever the umask says, and outputs are decrypted private data."""
    member = tarfile.data_filter(member, dest)
    mode = 0o700 if member.isdir() else ((member.mode or 0) & 0o700) | 0o600
    return member.replace(mode=mode, deep=False)


def extract_outputs(tarball: Path, output: Path) -> list[str]:
    """Unpack a verified result into `output` (0700); the names of the files written.

    Raises:
        LilypadError: `output` could not take them (a full disk, a file in the way), naming
            the result, which the node keeps, and how to unpack it by hand.
    """
    try:
        output.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tarfile.open(tarball) as archive:
            archive.extractall(output, filter=private_member)
            return sorted(m.name for m in archive.getmembers() if m.isfile())
    except (OSError, tarfile.TarError) as exc:
        raise LilypadError(f"writing the outputs to {output} failed ({exc}); the verified "
                           f"result is kept: tar -xf {tarball} -C DIRECTORY") from exc
