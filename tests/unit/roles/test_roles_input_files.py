"""Input files named by path: every check happens before anything is read or posted."""

import os

import pytest

from lilypad_p2p.roles._input_files import (
    MAX_JOB_INPUT_BYTES,
    InputFileError,
    check_inputs_fit,
    read_input_files,
)


def test_files_are_read_under_their_names(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"alpha")
    (tmp_path / "b.bin").write_bytes(b"\x00\x01")
    files = read_input_files({"a.txt": str(tmp_path / "a.txt"), "d/b.bin": str(tmp_path / "b.bin")})
    assert files == {"a.txt": b"alpha", "d/b.bin": b"\x00\x01"}


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("x", lambda p: str(p / "missing"), "no such file"),
        ("x", lambda p: str(p), "not a regular file"),
        ("x", lambda p: "relative.txt", "absolute path"),
        ("../x", lambda p: str(p / "f"), "input file name"),
    ],
)
def test_unusable_files_are_refused_with_one_line(tmp_path, name, make, message):
    (tmp_path / "f").write_bytes(b"ok")
    with pytest.raises(InputFileError, match=message) as caught:
        read_input_files({name: make(tmp_path)})
    assert "\n" not in str(caught.value)


def test_too_large_is_refused_on_the_sizes_before_reading(tmp_path):
    big = tmp_path / "big"
    with open(big, "wb") as fh:  # sparse: no disk, and reading it would take a while
        fh.truncate(MAX_JOB_INPUT_BYTES + 1)
    with pytest.raises(InputFileError, match=f"at most {MAX_JOB_INPUT_BYTES} bytes"):
        read_input_files({"big": str(big)})


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file: no permission to refuse")
def test_a_file_this_user_cannot_read_is_refused(tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"x")
    secret.chmod(0)
    with pytest.raises(InputFileError, match="not readable"):
        read_input_files({"s": str(secret)})


def test_the_encoded_inputs_must_fit_one_job():
    check_inputs_fit(MAX_JOB_INPUT_BYTES, 0)
    with pytest.raises(InputFileError, match="split the work"):
        check_inputs_fit(MAX_JOB_INPUT_BYTES + 1, 5)
