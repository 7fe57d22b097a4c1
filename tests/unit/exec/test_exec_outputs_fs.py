"""The bounded-outputs helpers that need no mount: image sizing and finding leftover mounts."""

import pytest

from lilypad_p2p.exec import _outputs_fs
from lilypad_p2p.exec._outputs_fs import _image_bytes, mounts_under

MIB = 2**20


# ext4's own share of an image, measured with the module's mkfs options (1, 5, 64+ MiB images).
@pytest.mark.parametrize(
    ("limit", "metadata"),
    [(1, 0.071), (MIB, 0.071), (4 * MIB, 0.043), (64 * MIB, 0.037), (4096 * MIB, 0.037)],
)
def test_the_image_leaves_the_limit_free_after_ext4s_measured_metadata(limit, metadata):
    image = _image_bytes(limit)
    assert image * (1 - metadata) >= limit
    assert image <= limit * 1.07 + 2.1 * MIB  # and not much more: the bound stays tight


def test_mounts_under_a_root_are_found_deepest_first_and_unescaped(tmp_path, monkeypatch):
    root = tmp_path / "jobs"
    root.mkdir()
    spaced = f"{root}/lilypad-job-a b/outputs".replace(" ", "\\040")
    lines = [
        f"36 25 7:0 / {root}/lilypad-job-1/outputs rw,nosuid,nodev - ext4 /dev/loop0 rw",
        f"37 25 7:1 / {spaced} rw - ext4 /dev/loop1 rw",
        f"38 25 7:2 / {root}/lilypad-job-1/outputs/deeper rw - ext4 /dev/loop2 rw",
        f"39 25 7:3 / {root}-other/x rw - ext4 /dev/loop3 rw",
        "40 25 0:5 / /proc rw - proc proc rw",
    ]
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text("\n".join(lines) + "\n")
    real_open = open
    monkeypatch.setattr(
        _outputs_fs,
        "open",
        lambda path, *a, **k: real_open(mountinfo if path == "/proc/self/mountinfo" else path,
                                         *a, **k),
        raising=False,
    )
    found = [str(p) for p in mounts_under(root)]
    assert found[0] == f"{root}/lilypad-job-1/outputs/deeper"
    assert sorted(found[1:]) == sorted(
        [f"{root}/lilypad-job-1/outputs", f"{root}/lilypad-job-a b/outputs"]
    )
