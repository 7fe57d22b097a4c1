import hashlib
import io
import os
import tarfile

import pytest
from multiformats import CID

from lilypad_p2p.exec import OutputRejected, result_cid, tar_directory


def _populate(root, *, mtime, file_order):
    (root / "sub").mkdir()
    for name in file_order:
        path = root / name
        path.write_bytes(name.encode() * 3)
        os.utime(path, (mtime, mtime))
    (root / "run.sh").write_bytes(b"#!/bin/sh\n")
    os.chmod(root / "run.sh", 0o700)
    os.symlink("/etc/passwd", root / "link")
    os.utime(root / "sub", (mtime, mtime))


def test_same_files_give_the_same_bytes_whatever_the_metadata(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    _populate(one, mtime=1_000_000, file_order=["b.txt", "a.txt", "sub/c.txt"])
    _populate(two, mtime=2_000_000, file_order=["sub/c.txt", "a.txt", "b.txt"])
    os.chmod(two / "a.txt", 0o600)
    assert tar_directory(one, max_bytes=2**20) == tar_directory(two, max_bytes=2**20)


def test_entries_are_sorted_with_fixed_metadata_and_symlinks_not_followed(tmp_path):
    _populate(tmp_path, mtime=1_000_000, file_order=["b.txt", "a.txt", "sub/c.txt"])
    with tarfile.open(fileobj=io.BytesIO(tar_directory(tmp_path, max_bytes=2**20))) as archive:
        members = archive.getmembers()
        names = [m.name for m in members]
        assert names == sorted(names) == ["a.txt", "b.txt", "link", "run.sh", "sub", "sub/c.txt"]
        assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 for m in members)
        assert all(m.uname == "" and m.gname == "" for m in members)
        by_name = {m.name: m for m in members}
        assert by_name["run.sh"].mode == 0o755 and by_name["a.txt"].mode == 0o644
        assert by_name["sub"].isdir() and by_name["sub"].mode == 0o755
        assert by_name["link"].issym() and by_name["link"].linkname == "/etc/passwd"
        assert archive.extractfile("sub/c.txt").read() == b"sub/c.txtsub/c.txtsub/c.txt"


def test_outputs_over_the_allowance_are_rejected(tmp_path):
    (tmp_path / "big").write_bytes(b"x" * 1001)
    with pytest.raises(OutputRejected, match="above"):
        tar_directory(tmp_path, max_bytes=1000)
    assert tar_directory(tmp_path, max_bytes=1001)


def test_fifos_are_rejected(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(OutputRejected, match="pipe"):
        tar_directory(tmp_path, max_bytes=1000)


def test_result_cid_is_cidv1_raw_sha256_of_the_tarball():
    cid = CID.decode(result_cid(b"tarball"))
    assert cid.version == 1 and cid.codec.name == "raw" and cid.base.name == "base32"
    assert cid.hashfun.name == "sha2-256"
    assert cid.raw_digest == hashlib.sha256(b"tarball").digest()
    assert result_cid(b"tarball") != result_cid(b"tarbalL")
