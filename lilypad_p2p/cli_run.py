"""What `lilypad-p2p run` does with a deal's phase, how it checks its input files and its
output directory, and what it says when it stops waiting: decisions kept out of the command
so each has a tested answer."""

from __future__ import annotations

import enum
import os
import signal
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
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


def input_file_paths(paths: Sequence[str | Path]) -> dict[str, str]:
    """Each `--file` as {name in /inputs: absolute path}, checked before anything is posted (the
    node reads the files itself, by the size it sees). Raises LilypadError naming the file and
    what to do."""
    from lilypad_p2p.exec import MalformedInputs
    from lilypad_p2p.exec._inputs import check_input_path
    from lilypad_p2p.roles._input_files import check_input_file

    files: dict[str, str] = {}
    for given in paths:
        if str(given) == "":
            raise LilypadError("--file '' names no file: give a file's path")
        path = Path(given)
        check_input_file(path, f"--file {given}")
        try:
            check_input_path(path.name)
        except MalformedInputs:
            raise LilypadError(
                f"--file {given}: its name {path.name!r} cannot be a name in /inputs, which "
                "takes ASCII letters, digits, '.', '_', '+' and '-' only; copy it to such a "
                "name") from None
        if path.name in files:
            raise LilypadError(f"--file {given}: two inputs are named {path.name!r}; rename one")
        files[path.name] = str(path.resolve())
    return files


def check_output_directory(output: str | Path, *, force: bool = False) -> Path:
    """Refuse an --output that cannot take the outputs, before anything is posted and paid
    for: it must be a directory, or be creatable (it is created and removed again to make
    sure), writable, and empty unless `force`: extraction replaces files of the same names.

    Raises:
        LilypadError: naming the directory and what to do.
    """
    if str(output) == "":
        raise LilypadError("--output '' names no directory: give one (it is created if "
                           "missing), e.g. --output out/")
    path = Path(output)
    if path.is_symlink() and not path.exists():
        raise LilypadError(f"--output {output} is a symbolic link to {os.readlink(path)}, "
                           "which does not exist: give a directory, or create the link's "
                           "target first")
    missing: list[Path] = []
    existing = path
    while not existing.exists() and existing != existing.parent:
        missing.append(existing)
        existing = existing.parent
    if not existing.is_dir():
        raise LilypadError(f"--output {output}: {existing} is not a directory; give a "
                           "directory (it is created if missing)")
    if not missing and not force:
        try:
            held = sorted(os.listdir(path))
        except OSError as exc:
            raise LilypadError(f"--output {output}: cannot list it ({exc.strerror})") from exc
        if held:
            shown = ", ".join(held[:3]) + (", …" if len(held) > 3 else "")
            raise LilypadError(f"--output {output} is not empty ({shown}): give a new or empty "
                               "directory, or --force to write into it (replacing files of "
                               "the same names)")
    made: list[Path] = []
    try:
        for directory in reversed(missing):
            directory.mkdir(mode=0o700)
            made.append(directory)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".lilypad-p2p-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        where = f"create {missing[len(made)]}" if len(made) < len(missing) else "write in it"
        raise LilypadError(f"--output {output}: cannot {where} ({exc.strerror}); give a "
                           "directory you can write in") from exc
    finally:
        for directory in reversed(made):
            with suppress(OSError):  # something else wrote there meanwhile: leave it
                directory.rmdir()
    return path


def private_member(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """tarfile's `data` filter, then owner-only modes: extraction sets each file's mode from
    the archive, whatever the umask says, and outputs are decrypted private data. The time is
    now: a result tarball says 1970 (its bytes must not depend on when it ran)."""
    member = tarfile.data_filter(member, dest)
    mode = 0o700 if member.isdir() else ((member.mode or 0) & 0o700) | 0o600
    return member.replace(mode=mode, mtime=time.time(), deep=False)


def extract_outputs(tarball: Path, output: Path, *, force: bool = False) -> list[str]:
    """Unpack a verified result into `output` (0700); the names of the files written. A file
    already there stops it unless `force` (the directory was checked empty when the job was
    posted: something wrote there since); with `force` it is replaced, never written through
    (it may be a link).

    Raises:
        LilypadError: `output` could not take them (a full disk, a file in the way), naming
            the result, which the node keeps, and how to unpack it by hand.
    """
    kept = f"the verified result is kept: tar -xf {tarball} -C DIRECTORY"
    try:
        output.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tarfile.open(tarball) as archive:
            members = archive.getmembers()
            taken = [output / m.name for m in members
                     if not m.isdir() and os.path.lexists(output / m.name)]
            if taken and not force:
                raise LilypadError(f"{taken[0]} appeared since the job was posted; nothing "
                                   f"was overwritten, and {kept}")
            root = output.resolve()
            for path in taken:
                # Only inside `output` (the filter refuses the rest); unlink never follows
                # the link it removes.
                if path.parent.resolve().is_relative_to(root):
                    path.unlink()
            archive.extractall(output, filter=private_member)
            return sorted(m.name for m in members if m.isfile())
    except (OSError, tarfile.TarError) as exc:
        raise LilypadError(f"writing the outputs to {output} failed ({exc}); {kept}") from exc


class Interrupted(BaseException):
    """`run` got SIGINT or SIGTERM while it waited: a BaseException, like KeyboardInterrupt,
    so no handler of errors swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextmanager
def interrupts_raised() -> Iterator[None]:
    """SIGINT and SIGTERM raise `Interrupted` while `run` waits, so it can say what goes on
    without it (the node keeps driving the deal, and pays for it)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set there
        return

    def interrupted(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signum)

    # An ignored signal stays ignored: under nohup, or in a background job (which the shell
    # starts with SIGINT ignored), the user asked that it not stop the command.
    previous = {signum: signal.signal(signum, interrupted)
                for signum in (signal.SIGINT, signal.SIGTERM)
                if signal.getsignal(signum) is not signal.SIG_IGN}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def left_running(key: str, deal: dict[str, Any] | None, results: Path) -> str:
    """What goes on once `run` stops waiting for deal `key` (`deal` as last seen), and how to
    get the outputs later; `results` is the node's results directory."""
    result = (deal or {}).get("result_path")
    if result and judge(deal or {}).next is Next.OUTPUTS:
        return f"the node keeps deal {key} going; its verified result: tar -xf {result} -C DIR"
    return (f"the node keeps driving deal {key} (a deal it makes is paid as usual): "
            f"`lilypad-p2p deals` shows its phase; once it is accepted, unpack its outputs "
            f"with tar -xf {results / (key + '.tar')} -C DIR")
