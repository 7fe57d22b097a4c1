"""A recipe may come from someone else (a cloned repository) and `modules image` often runs as
root: a malformed or hostile recipe is refused with one line, and nothing outside the recipe
directory ends up in the image."""

import io
import json
import os
import shutil
import stat
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lilypad_p2p.cli import app
from lilypad_p2p.exec import ImageRefused, build_image_archive
from lilypad_p2p.exec import _images as images
from lilypad_p2p.exec._images import MAX_RECIPE_BYTES

SECRET = b"host secret that must never reach an image\n"


def _recipe(tmp_path: Path, toml: str) -> Path:
    """`tmp_path/recipes/r`: a recipe with `toml` as its recipe.toml and an empty rootfs/."""
    recipe = tmp_path / "recipes" / "r"
    (recipe / "rootfs").mkdir(parents=True)
    (recipe / "recipe.toml").write_text(toml)
    return recipe


def _host_secret(tmp_path: Path) -> Path:
    """A host file outside the recipe, readable only by its owner (like /etc/shadow)."""
    secret = tmp_path / "host" / "shadow"
    secret.parent.mkdir()
    secret.write_bytes(SECRET)
    secret.chmod(0o600)
    return secret


def _refusal(tmp_path: Path) -> str:
    with pytest.raises(ImageRefused) as refused:
        build_image_archive("r", tmp_path / "recipes")
    message = str(refused.value)
    assert "\n" not in message
    return message


def _layer_members(archive: bytes) -> dict[str, bytes | None]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as outer:
        manifest = json.loads(outer.extractfile("manifest.json").read())
        layer = outer.extractfile(manifest[0]["Layers"][0]).read()
    with tarfile.open(fileobj=io.BytesIO(layer)) as rootfs:
        return {
            m.name: rootfs.extractfile(m).read() if m.isfile() else None
            for m in rootfs.getmembers()
        }


@pytest.mark.parametrize(
    ("toml", "names"),
    [
        ("directories = [", ["not valid TOML"]),
        ("directories = 5", ["directories", "list of image paths"]),
        ("busybox = 5", ["busybox", "host path"]),
        ('trees = ["x"]', ["trees", "source"]),
        ('trees = [{source = "/usr/lib", exclude = "test"}]', ["trees exclude", "list of names"]),
        ('trees = [{from = "/usr/lib"}]', ["trees", "source"]),
        ("links = 5", ["links", "table"]),
        ('links = {"bin/sh" = 5}', ["links target", "bin/sh"]),
        ("optional = 1", ["optional", "true or false"]),
        ('executables = "/bin/ls"', ["executables", "list of host paths"]),
        ('executables = ["bin/ls"]', ["executables", "'bin/ls'", "absolute"]),
        ("bogus = 1", ["unknown key(s) ['bogus']", "'directories'", "'links'"]),
    ],
)
def test_a_malformed_recipe_is_refused_with_one_line_naming_the_key(tmp_path, toml, names):
    _recipe(tmp_path, toml + "\n")
    message = _refusal(tmp_path)
    assert message.startswith("r/recipe.toml")
    for name in names:
        assert name in message


def test_a_busybox_that_is_not_busybox_is_refused(tmp_path):
    _recipe(tmp_path, 'busybox = "/bin/true"\n')
    assert "/bin/true is not a busybox binary" in _refusal(tmp_path)


def test_the_recipes_busybox_runs_as_nobody_when_built_as_root(tmp_path):
    # A recipe may name a "busybox" of its own: a public file, but its program runs. This one
    # lists its user ID as an applet, so the image tells who ran it.
    public = Path(tempfile.mkdtemp(prefix="recipe-busybox-"))  # under /tmp: every user may reach
    try:
        public.chmod(0o755)
        fake = public / "busybox"
        fake.write_text('#!/bin/sh\necho sh; echo "uid$(id -u)"; echo "cwd$(pwd | tr / _)"\n')
        fake.chmod(0o755)
        _recipe(tmp_path, f'busybox = "{fake}"\n')
        members = _layer_members(build_image_archive("r", tmp_path / "recipes").archive)
    finally:
        shutil.rmtree(public)
    runner = 65534 if os.geteuid() == 0 else os.geteuid()
    assert f"bin/uid{runner}" in members and "bin/cwd_" in members, sorted(members)


@pytest.mark.parametrize(
    ("toml", "key", "path"),
    [
        ('directories = ["../../etc"]', "directories", "'../../etc'"),
        ('directories = ["tmp/../../x"]', "directories", "'tmp/../../x'"),
        ('directories = ["/etc"]', "directories", "'/etc'"),
        ('directories = [""]', "directories", "''"),
        ('directories = ["a\\u0000b"]', "directories", "'a\\x00b'"),
        ('[links]\n"../../x" = "busybox"', "links", "'../../x'"),
        ('[links]\n"usr//bin" = "busybox"', "links", "'usr//bin'"),
        ('trees = [{source = "/usr/lib/../../etc"}]', "trees source", "'/usr/lib/../../etc'"),
    ],
)
def test_a_path_leaving_the_image_root_is_refused(tmp_path, toml, key, path):
    _recipe(tmp_path, toml + "\n")
    message = _refusal(tmp_path)
    assert f"{key}: {path} is not" in message


def test_a_rootfs_symlink_to_a_host_file_is_refused_not_followed(tmp_path):
    secret = _host_secret(tmp_path)
    recipe = _recipe(tmp_path, 'directories = ["etc"]\n')
    (recipe / "rootfs" / "etc").mkdir()
    (recipe / "rootfs" / "etc" / "stolen").symlink_to(secret)
    assert "r/rootfs/etc/stolen is a symlink" in _refusal(tmp_path)


def test_modules_image_refuses_the_symlink_and_writes_no_archive(tmp_path):
    secret = _host_secret(tmp_path)
    recipe = _recipe(tmp_path, 'directories = ["etc"]\n')
    (recipe / "rootfs" / "stolen").symlink_to(secret)
    output = tmp_path / "image.tar"
    result = CliRunner().invoke(app, ["modules", "image", str(recipe), "-o", str(output)])
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and result.output.count("\n") == 1
    assert "is a symlink" in result.output
    assert not output.exists()


def test_a_rootfs_that_is_a_symlink_out_of_the_recipe_is_refused(tmp_path):
    secret = _host_secret(tmp_path)
    recipe = tmp_path / "recipes" / "r"
    recipe.mkdir(parents=True)
    (recipe / "recipe.toml").write_text('directories = ["etc"]\n')
    (recipe / "rootfs").symlink_to(secret.parent)
    assert "r/rootfs is not a directory" in _refusal(tmp_path)


def test_a_rootfs_directory_symlink_is_refused_not_walked(tmp_path):
    secret = _host_secret(tmp_path)
    recipe = _recipe(tmp_path, 'directories = ["etc"]\n')
    (recipe / "rootfs" / "etc").symlink_to(secret.parent)
    assert "r/rootfs/etc is a symlink" in _refusal(tmp_path)


def test_a_rootfs_hard_link_is_refused(tmp_path):
    secret = _host_secret(tmp_path)
    recipe = _recipe(tmp_path, 'directories = ["etc"]\n')
    os.link(secret, recipe / "rootfs" / "shadow")
    assert "r/rootfs/shadow is a hard link" in _refusal(tmp_path)


def test_a_rootfs_fifo_is_refused(tmp_path):
    recipe = _recipe(tmp_path, 'directories = ["etc"]\n')
    os.mkfifo(recipe / "rootfs" / "pipe")
    assert "r/rootfs/pipe is a device, FIFO or socket" in _refusal(tmp_path)


def test_a_host_file_not_every_user_may_read_is_not_copied(tmp_path):
    secret = _host_secret(tmp_path)
    _recipe(tmp_path, f'executables = ["{secret}"]\n')
    assert "not a regular file every user may read" in _refusal(tmp_path)


def test_the_links_table_still_makes_symlinks_without_reading_their_targets(tmp_path):
    secret = _host_secret(tmp_path)
    recipe = _recipe(tmp_path, f'directories = ["etc"]\n[links]\n"etc/stolen" = "{secret}"\n')
    (recipe / "rootfs" / "etc" / "motd").parent.mkdir()
    (recipe / "rootfs" / "etc" / "motd").write_text("hello\n")
    members = _layer_members(build_image_archive("r", tmp_path / "recipes").archive)
    assert members["etc/motd"] == b"hello\n"
    assert members["etc/stolen"] is None
    assert all(SECRET not in (content or b"") for content in members.values())


def test_a_recipe_toml_over_the_limit_is_refused(tmp_path):
    _recipe(tmp_path, "# " + "x" * MAX_RECIPE_BYTES + "\ndirectories = []\n")
    assert f"larger than {MAX_RECIPE_BYTES} bytes" in _refusal(tmp_path)


def test_a_recipe_toml_symlink_out_of_the_recipe_is_refused_unread(tmp_path):
    outside = tmp_path / "host" / "recipe.toml"
    outside.parent.mkdir()
    outside.write_text('directories = ["etc"]\n')
    recipe = _recipe(tmp_path, "")
    (recipe / "recipe.toml").unlink()
    (recipe / "recipe.toml").symlink_to(outside)
    assert "r/recipe.toml is a symlink" in _refusal(tmp_path)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root makes device nodes")
def test_a_recipe_toml_device_is_refused_unread(tmp_path):
    recipe = _recipe(tmp_path, "")
    (recipe / "recipe.toml").unlink()
    # /dev/null's numbers: a build that read it would get an empty, valid recipe; /dev/zero's
    # would make a regressed build read forever.
    os.mknod(recipe / "recipe.toml", stat.S_IFCHR | 0o644, os.makedev(1, 3))
    assert "r/recipe.toml is a device, FIFO or socket" in _refusal(tmp_path)


def test_a_recipe_toml_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    recipe = _recipe(tmp_path, "")
    (recipe / "recipe.toml").unlink()
    os.mkfifo(recipe / "recipe.toml")
    done = threading.Event()

    def feed_a_reader_that_opened_it() -> None:
        # Only a build that opens the FIFO gets a valid recipe (and builds); none should.
        while not done.is_set():
            try:
                fd = os.open(recipe / "recipe.toml", os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                time.sleep(0.01)
                continue
            os.write(fd, b'directories = ["etc"]\n')
            os.close(fd)
            return

    writer = threading.Thread(target=feed_a_reader_that_opened_it, daemon=True)
    writer.start()
    try:
        assert "r/recipe.toml is a device, FIFO or socket" in _refusal(tmp_path)
    finally:
        done.set()
        writer.join()


def test_a_rootfs_file_too_large_for_the_image_is_refused_unread(tmp_path):
    recipe = _recipe(tmp_path, "")
    with (recipe / "rootfs" / "huge").open("wb") as sparse:  # no disk used, never read
        sparse.truncate(images.MAX_IMAGE_CONTENT_BYTES + 1)
    message = _refusal(tmp_path)
    assert "r/rootfs/huge" in message and "512 MiB" in message and "registry" in message


def test_a_host_file_too_large_for_the_image_is_refused_unread(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "MAX_IMAGE_CONTENT_BYTES", 1000)  # /bin/sh is larger
    _recipe(tmp_path, 'executables = ["/bin/sh"]\n')
    assert "/bin/sh would take the image's files past" in _refusal(tmp_path)


def test_the_limit_counts_every_file_of_the_image_together(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "MAX_IMAGE_CONTENT_BYTES", 1000)
    recipe = _recipe(tmp_path, "")
    for name in ("a", "b"):
        (recipe / "rootfs" / name).write_bytes(b"x" * 600)
    assert "r/rootfs/b would take the image's files past" in _refusal(tmp_path)
    (recipe / "rootfs" / "b").write_bytes(b"x" * 400)
    assert _layer_members(build_image_archive("r", tmp_path / "recipes").archive)["b"] == b"x" * 400
