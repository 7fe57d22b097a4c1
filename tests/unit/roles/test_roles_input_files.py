"""Input files named by path: every check happens before anything is read or posted."""

import os

import pytest

from lilypad_p2p.config import DEFAULT_MAX_JOB_BYTES
from lilypad_p2p.roles._input_files import InputFileError, check_input_files, check_job_size


def test_files_are_checked_and_named_without_being_read(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"alpha")
    (tmp_path / "b.bin").write_bytes(b"\x00\x01")
    files = check_input_files({"a.txt": str(tmp_path / "a.txt"),
                               "d/b.bin": str(tmp_path / "b.bin")})
    assert files == {"a.txt": tmp_path / "a.txt", "d/b.bin": tmp_path / "b.bin"}


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("x", lambda p: str(p / "missing"), "no such file"),
        ("x", lambda p: str(p), "is a directory"),
        ("x", lambda p: "relative.txt", "absolute path"),
        ("../x", lambda p: str(p / "f"), "input file name"),
    ],
)
def test_unusable_files_are_refused_with_one_line(tmp_path, name, make, message):
    (tmp_path / "f").write_bytes(b"ok")
    with pytest.raises(InputFileError, match=message) as caught:
        check_input_files({name: make(tmp_path)})
    assert "\n" not in str(caught.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file: no permission to refuse")
def test_a_file_this_user_cannot_read_is_refused(tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"x")
    secret.chmod(0)
    with pytest.raises(InputFileError, match="not readable"):
        check_input_files({"s": str(secret)})


def test_a_job_over_max_job_bytes_is_refused_with_one_line_naming_the_setting():
    check_job_size(DEFAULT_MAX_JOB_BYTES, DEFAULT_MAX_JOB_BYTES)
    with pytest.raises(InputFileError) as caught:
        check_job_size(DEFAULT_MAX_JOB_BYTES + 1, DEFAULT_MAX_JOB_BYTES)
    assert str(caught.value) == (
        "the job's inputs take 4294967297 bytes, over this node's max_job_bytes of 4294967296: "
        "pass smaller files, split the work into several jobs, or raise max_job_bytes in "
        "config.toml")
