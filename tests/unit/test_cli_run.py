"""`lilypad-p2p run`'s answer to every deal phase, and its input-file errors."""

from pathlib import Path

import pytest

from lilypad_p2p.cli_run import (
    LOGS_LINE_CHARS,
    LOGS_TAIL_LINES,
    LOGS_TAIL_READ_BYTES,
    Next,
    input_file_paths,
    judge,
    logs_tail,
)
from lilypad_p2p.errors import LilypadError
from lilypad_p2p.market import Phase


@pytest.mark.parametrize("phase", [p.value for p in Phase])
def test_every_phase_has_an_answer_and_final_phases_stop_the_wait(phase):
    verdict = judge({"phase": phase, "outcome": None, "result_path": None})
    if Phase(phase).is_final:
        assert verdict.next is not Next.WAIT
    elif phase != "accepted":
        assert verdict.next is Next.WAIT


def test_disputed_waits_and_resolved_ends_by_outcome():
    assert judge({"phase": "disputed"}).next is Next.WAIT
    upheld = judge({"phase": "resolved", "outcome": "PROVIDER_CORRECT", "result_path": "/r"})
    assert upheld.next is Next.OUTPUTS
    wrong = judge({"phase": "resolved", "outcome": "PROVIDER_WRONG", "result_path": "/r"})
    assert wrong.next is Next.FAIL and "payment was returned" in wrong.message
    other = judge({"phase": "resolved", "outcome": None})
    assert other.next is Next.FAIL and "lilypad-p2p deals" in other.message


def test_a_failure_result_ends_the_run_with_its_logs_not_outputs():
    failed = {"failure": "exit", "result_path": "/h/results/bafk1.failure.json"}
    for phase in ("accepted", "settled"):
        verdict = judge({**failed, "phase": phase})
        assert verdict.next is Next.FAIL
        assert "failed on the provider (exit)" in verdict.message
        assert "logs: /h/results/bafk1.logs" in verdict.message
        assert verdict.logs == Path("/h/results/bafk1.logs")
    upheld = judge({**failed, "phase": "resolved", "outcome": "PROVIDER_CORRECT"})
    assert upheld.next is Next.FAIL and "mediators failed it alike" in upheld.message


def test_a_failed_runs_logs_are_shown_by_their_end_and_cannot_drive_the_terminal(tmp_path):
    logs = tmp_path / "bafk1.logs"
    logs.write_bytes(b"".join(b"line %d\n" % n for n in range(100))
                     + b"\x1b]0;pwned\x07\x1b[2Jclear\tscreen\n" + b"x" * 1000 + b"\n\xff\xfe")
    tail = logs_tail(logs)
    assert len(tail) == LOGS_TAIL_LINES and tail[0] == "line 83"
    assert tail[-3] == "\ufffd]0;pwned\ufffd\ufffd[2Jclear screen"
    assert tail[-2] == "x" * LOGS_LINE_CHARS + " …"
    assert tail[-1] == "\ufffd\ufffd"
    assert all(c.isprintable() for line in tail for c in line)
    big = tmp_path / "big.logs"
    big.write_bytes(b"y" * (LOGS_TAIL_READ_BYTES * 4) + b"\nthe error\n")
    assert logs_tail(big) == ["the error"]
    assert logs_tail(tmp_path / "missing.logs") == []


def test_input_file_errors_name_the_file(tmp_path):
    with pytest.raises(LilypadError, match=r"--file .*missing.txt: no such file"):
        input_file_paths([tmp_path / "missing.txt"])
    with pytest.raises(LilypadError, match="is a directory"):
        input_file_paths([tmp_path])
    (tmp_path / "a.txt").write_bytes(b"x")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_bytes(b"y")
    with pytest.raises(LilypadError, match=r"two inputs are named 'a\.txt'"):
        input_file_paths([tmp_path / "a.txt", tmp_path / "d" / "a.txt"])
    assert input_file_paths([tmp_path / "a.txt"]) == {"a.txt": str(tmp_path / "a.txt")}


def test_extracted_outputs_are_owner_only(tmp_path):
    import io
    import tarfile

    from lilypad_p2p.cli_run import private_member

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, mode in (("out.txt", 0o644), ("tool", 0o755)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = 1, mode
            archive.addfile(info, io.BytesIO(b"x"))
        folder = tarfile.TarInfo("sub")
        folder.type, folder.mode = tarfile.DIRTYPE, 0o777
        archive.addfile(folder)
    buffer.seek(0)
    with tarfile.open(fileobj=buffer) as archive:
        archive.extractall(tmp_path, filter=private_member)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {"out.txt": 0o600, "tool": 0o700, "sub": 0o700}


def test_an_output_that_cannot_hold_the_outputs_is_refused_before_posting(tmp_path):
    from lilypad_p2p.cli_run import check_output_directory

    (tmp_path / "a-file").write_text("x")
    with pytest.raises(LilypadError, match=r"a-file is not a directory; give a directory"):
        check_output_directory(tmp_path / "a-file")
    with pytest.raises(LilypadError, match=r"a-file/out: .*a-file is not a directory"):
        check_output_directory(tmp_path / "a-file" / "out")
    check_output_directory(tmp_path / "new" / "deeper")  # created when the outputs arrive
    check_output_directory(tmp_path, force=True)
    assert not (tmp_path / "new").exists()


def test_outputs_that_cannot_be_written_name_the_kept_result(tmp_path):
    import tarfile

    from lilypad_p2p.cli_run import extract_outputs

    (tmp_path / "out.txt").write_text("x")
    result = tmp_path / "result.tar"
    with tarfile.open(result, "w") as archive:
        archive.add(tmp_path / "out.txt", arcname="out.txt")
    (tmp_path / "in-the-way").write_text("a file where the directory goes")
    with pytest.raises(LilypadError, match=rf"the verified result is kept: tar -xf {result}"):
        extract_outputs(result, tmp_path / "in-the-way")
    assert extract_outputs(result, tmp_path / "fine") == ["out.txt"]
    assert (tmp_path / "fine" / "out.txt").read_text() == "x"


@pytest.mark.parametrize(("pairs", "said"), [
    (["-i", "text=a", "-i", "text=b"], "error: -i text= is given twice; give each parameter once"),
    (["-i", "text"], "error: -i 'text': expected key=value"),
])
def test_input_pairs_are_checked_before_the_node_is_asked(tmp_path, pairs, said):
    from typer.testing import CliRunner

    from lilypad_p2p.cli import app

    result = CliRunner().invoke(app, ["run", "hash", *pairs, "--home", str(tmp_path)])
    assert result.exit_code == 1 and result.output.strip().splitlines() == [said], result.output


def _result_tar(path: Path, files: dict[str, bytes]) -> Path:
    """A result tarball as providers make it: mtime 0 (exec/_tarball.py)."""
    import io
    import tarfile

    with tarfile.open(path, "w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            archive.addfile(info, io.BytesIO(data))
    return path


def test_an_output_directory_holding_files_is_refused_unless_forced(tmp_path):
    from lilypad_p2p.cli_run import check_output_directory

    out = tmp_path / "out"
    out.mkdir()
    (out / "digest.txt").write_text("the user's own")
    with pytest.raises(LilypadError, match=r"--output .*out is not empty \(digest\.txt\): give a "
                                           r"new or empty directory, or --force"):
        check_output_directory(out)
    assert check_output_directory(out, force=True) == out
    (out / "digest.txt").unlink()
    assert check_output_directory(out) == out  # empty: fine
    assert check_output_directory(str(tmp_path / "fresh")) == tmp_path / "fresh"


def test_outputs_never_overwrite_a_file_that_appeared_unless_forced(tmp_path):
    import time

    from lilypad_p2p.cli_run import extract_outputs

    result = _result_tar(tmp_path / "r.tar", {"digest.txt": b"new"})
    out = tmp_path / "out"
    out.mkdir()
    (out / "digest.txt").write_text("the user's own")
    with pytest.raises(LilypadError, match=r"digest\.txt appeared since the job was posted; "
                                           r"nothing was overwritten"):
        extract_outputs(result, out)
    assert (out / "digest.txt").read_text() == "the user's own"
    # Forced: replaced, not written through a link that stands there.
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("keep")
    (out / "digest.txt").unlink()
    (out / "digest.txt").symlink_to(elsewhere)
    before = time.time()
    assert extract_outputs(result, out, force=True) == ["digest.txt"]
    assert (out / "digest.txt").read_bytes() == b"new" and not (out / "digest.txt").is_symlink()
    assert elsewhere.read_text() == "keep"
    # The tarball says 1970 (its bytes must not depend on the time); the files say now.
    assert (out / "digest.txt").stat().st_mtime >= before - 1


@pytest.mark.parametrize(("given", "said"), [
    ("", r"--output '' names no directory: give one"),
    ("/proc/out", r"--output /proc/out: cannot create /proc/out \(.*\); give a directory you "
                  r"can write in"),
])
def test_an_output_that_cannot_be_created_is_refused_before_posting(given, said):
    from lilypad_p2p.cli_run import check_output_directory

    with pytest.raises(LilypadError, match=said):
        check_output_directory(given)


def test_a_dangling_symlink_output_is_refused_before_posting(tmp_path):
    from lilypad_p2p.cli_run import check_output_directory

    (tmp_path / "symout").symlink_to(tmp_path / "gone")
    with pytest.raises(LilypadError, match=r"symout is a symbolic link to .*gone, which does not "
                                           r"exist"):
        check_output_directory(tmp_path / "symout")


def test_an_output_on_a_read_only_filesystem_is_refused(tmp_path, monkeypatch):
    import errno
    import tempfile

    from lilypad_p2p.cli_run import check_output_directory

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(LilypadError, match=r"cannot write in it \(Read-only file system\)"):
        check_output_directory(tmp_path / "new")
    assert not (tmp_path / "new").exists()  # made to check, and removed again


def test_input_files_that_are_not_regular_files_say_what_they_are(tmp_path):
    import os

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(LilypadError, match=r"pipe is a named pipe \(FIFO\), not a regular file"):
        input_file_paths([fifo])
    with pytest.raises(LilypadError, match=r"/dev/null is a character device, not a regular"):
        input_file_paths(["/dev/null"])
    with pytest.raises(LilypadError, match=r"--file '' names no file"):
        input_file_paths([""])


def test_input_files_whose_size_cannot_be_trusted_are_refused():
    # /proc files say 0 bytes and hold text: the node would send them empty.
    with pytest.raises(LilypadError, match=r"/proc/version is on proc, whose files do not report"):
        input_file_paths(["/proc/version"])


def test_a_zero_size_file_with_content_is_refused(tmp_path, monkeypatch):
    from lilypad_p2p.roles import _input_files

    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    assert input_file_paths([empty]) == {"empty.txt": str(empty)}  # really empty: fine
    monkeypatch.setattr(_input_files, "_has_content", lambda path: True)
    with pytest.raises(LilypadError, match=r"empty\.txt reports 0 bytes but holds data"):
        input_file_paths([empty])


def test_input_file_names_must_fit_inputs(tmp_path):
    odd = tmp_path / "héllo wörld.txt"
    odd.write_text("x")
    with pytest.raises(LilypadError, match=r"ASCII letters, digits, '\.', '_', '\+' and '-' "
                                           r"only; copy it to such a name"):
        input_file_paths([odd])
