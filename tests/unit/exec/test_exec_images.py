import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from lilypad_p2p.exec import (
    ImageMissing,
    build_image_archive,
    recipe_is_optional,
    recipe_names,
)
from lilypad_p2p.testing import require_real

BUSYBOX = Path("/bin/busybox")


@pytest.fixture
def busybox():
    if not BUSYBOX.is_file():
        require_real("busybox-static", f"{BUSYBOX} missing; scripts/setup installs it")
    return BUSYBOX


def test_the_recipes_ship_and_only_python_is_optional():
    assert {"busybox", "python"} <= set(recipe_names())
    assert not recipe_is_optional("busybox")
    assert recipe_is_optional("python")


def test_archive_is_deterministic_and_its_id_is_the_config_hash(busybox):
    first = build_image_archive("busybox")
    assert first == build_image_archive("busybox")
    with tarfile.open(fileobj=io.BytesIO(first.archive)) as archive:
        manifest = json.loads(archive.extractfile("manifest.json").read())
        config_bytes = archive.extractfile(manifest[0]["Config"]).read()
        layer = archive.extractfile(manifest[0]["Layers"][0]).read()
    assert first.image_id == "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    config = json.loads(config_bytes)
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer).hexdigest()]
    assert config["created"] == "1970-01-01T00:00:00Z"
    assert manifest[0]["RepoTags"] == [first.tag]


def test_layer_holds_busybox_its_applets_an_unprivileged_user_and_mount_points(busybox):
    image = build_image_archive("busybox")
    with tarfile.open(fileobj=io.BytesIO(image.archive)) as outer:
        manifest = json.loads(outer.extractfile("manifest.json").read())
        layer = outer.extractfile(manifest[0]["Layers"][0]).read()
    with tarfile.open(fileobj=io.BytesIO(layer)) as rootfs:
        members = {m.name: m for m in rootfs.getmembers()}
        assert rootfs.extractfile("bin/busybox").read() == busybox.read_bytes()
        passwd = rootfs.extractfile("etc/passwd").read()
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "busybox"
    assert members["bin/sha256sum"].issym()
    assert b"nobody:x:65534:65534" in passwd
    assert members["tmp"].mode == 0o1777
    assert {"inputs", "outputs", "proc", "dev", "sys"} <= set(members)
    assert all(m.mtime == 0 and m.uid == 0 for m in members.values())


def test_unknown_recipe_is_image_missing(tmp_path):
    with pytest.raises(ImageMissing, match="no image recipe"):
        build_image_archive("nope", tmp_path)


def test_missing_busybox_says_how_to_install_it(tmp_path):
    recipe = tmp_path / "bb"
    shutil.copytree(Path(__file__).parents[3] / "lilypad_p2p/exec/images/busybox", recipe)
    text = (recipe / "recipe.toml").read_text().replace("/bin/busybox", str(tmp_path / "none"))
    (recipe / "recipe.toml").write_text(text)
    with pytest.raises(ImageMissing, match="busybox-static"):
        build_image_archive("bb", tmp_path)


def test_host_files_are_copied_with_the_shared_libraries_they_load(tmp_path, busybox):
    recipe = tmp_path / "tool"
    (recipe / "rootfs").mkdir(parents=True)
    (recipe / "recipe.toml").write_text(
        'executables = ["/bin/ls"]\n[links]\n"usr/bin/list" = "/bin/ls"\n'
    )
    image = build_image_archive("tool", tmp_path)
    with tarfile.open(fileobj=io.BytesIO(image.archive)) as outer:
        manifest = json.loads(outer.extractfile("manifest.json").read())
        layer = outer.extractfile(manifest[0]["Layers"][0]).read()
    with tarfile.open(fileobj=io.BytesIO(layer)) as rootfs:
        names = set(rootfs.getnames())
        assert rootfs.getmember("bin/ls").mode == 0o755
        assert rootfs.getmember("usr/bin/list").linkname == "/bin/ls"
    assert any(name.endswith("/libc.so.6") for name in names)
    assert any("ld-linux" in name for name in names)
    assert {"bin", "usr", "usr/bin"} <= names
