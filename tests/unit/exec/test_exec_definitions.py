"""Module definitions: TOML in, canonical bytes and a CID out; shipped modules; git sources."""

import subprocess

import pytest

from lilypad_p2p.exec import (
    BUILTIN_IDS,
    BUILTIN_MODULES,
    BadDefinition,
    BadParameters,
    ModuleCatalog,
    UnknownModule,
    UnreadableDefinition,
    definition_bytes,
    load_definition_text,
    module_from_bytes,
    module_from_source,
    module_id,
)
from lilypad_p2p.wire import content_id

DEFINITION = """
name = "say"
version = "0.1.0"
image = "recipe:busybox"
command = ["/bin/sh", "-c", 'echo "$1" > /outputs/said.txt', "say", "{text}"]
outputs = ["said.txt"]

[resources]
milli_cpu = 250
memory_mb = 32
disk_mb = 4

[params.text]
kind = "str"
default = "moo"
"""


def test_the_id_is_the_cid_of_the_canonical_bytes_whatever_the_layout():
    module = load_definition_text(DEFINITION)
    spelled_out = load_definition_text("# defaults written out\n" + DEFINITION.replace(
        'outputs = ["said.txt"]',
        'outputs = ["said.txt"]\ndeterministic = true\nmax_run_time_s = 600\ndescription = ""'))
    assert module_id(module) == module_id(spelled_out) == content_id(definition_bytes(module))
    assert module_id(module).startswith("bafkrei")
    changed = load_definition_text(DEFINITION.replace("memory_mb = 32", "memory_mb = 33"))
    assert module_id(changed) != module_id(module)


def test_input_file_is_part_of_the_id_only_when_set():
    module = load_definition_text(DEFINITION)
    said_false = load_definition_text(DEFINITION + "input_file = false\n")
    said_true = load_definition_text(DEFINITION + "input_file = true\n")
    assert module_id(said_false) == module_id(module) != module_id(said_true)
    assert said_true.params["text"].input_file and not module.params["text"].input_file
    assert module_from_bytes(module_id(said_true), definition_bytes(said_true)) == said_true


@pytest.mark.parametrize("value", ["../../etc/passwd", "/etc/passwd", "a//b", "./x", ""])
def test_an_input_file_parameter_names_a_path_under_inputs(value):
    wordcount = BUILTIN_MODULES["wordcount"]
    assert wordcount.params["file"].check("file", "data/part-1.txt") == "data/part-1.txt"
    with pytest.raises(BadParameters, match="parameter 'file' names an input file"):
        wordcount.params["file"].check("file", value)


def test_shipped_modules_are_definitions_with_stable_ids():
    assert set(BUILTIN_MODULES) == {"hash", "wordcount", "random", "python"}
    for name, module in BUILTIN_MODULES.items():
        assert BUILTIN_IDS[name] == module_id(module)
        assert module_from_bytes(BUILTIN_IDS[name], definition_bytes(module)) == module
    assert BUILTIN_MODULES["random"].deterministic is False


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("milli_cpu = 250", "milli_cpu = true"), "milli_cpu must be int"),
        (('name = "say"', 'name = "Say!"'), "module name"),
        (("[resources]", "colour = 1\n[resources]"), "unknown key(s) ['colour']"),
        (('image = "recipe:busybox"', 'image = "busybox:latest"'), "must be recipe:"),
        (('kind = "str"', 'kind = "float"'), "parameter kind"),
        (("disk_mb = 4\n", ""), "missing key 'disk_mb'"),
        (("[params.text]", "[params.text"), "not valid TOML"),
        (('default = "moo"', "default = 5"), "[params.text]: parameter 'default': expected str"),
        (('default = "moo"', 'choices = ["a", 1]'), "parameter 'choice': expected str, got 1"),
        (('default = "moo"', 'choices = [["a"]]'), "parameter 'choice': expected str"),
        (('default = "moo"', 'choices = ["a", "a"]'), "repeat a value"),
        (('default = "moo"', 'default = "moo"\nchoices = ["a"]'), "'moo' is not one of ['a']"),
        (('kind = "str"\ndefault = "moo"', 'kind = "int"\nminimum = 10\nmaximum = 1'),
         "minimum 10 is above maximum 1"),
        (('default = "moo"', "max_length = -1"), "max_length -1 is negative"),
        (("milli_cpu = 250", "milli_cpu = 9223372036854775807"),
         "milli_cpu = 9223372036854775807 is more than any resource offer can carry"),
        (("disk_mb = 4", "disk_mb = 4\ngpus = 100000"), "gpus = 100000 is more than"),
        (("disk_mb = 4", "disk_mb = 4\nmax_processes = 9223372036854775807"),
         "max_processes must be at most"),
        (('version = "0.1.0"', 'version = "0.1.0"\ndescription = "\\u001b[31mred\\u202e"'),
         "description must be printable text on one line"),
        (('"say", "{text}"', '"say\\u0000", "{text}"'), "command contains a NUL character"),
        (("[params.text]", "x = " + "[" * 60_000), "nested too deeply"),
        (('kind = "str"\ndefault = "moo"', 'kind = "int"\ninput_file = true'),
         "input_file applies to str parameters only"),
        (('default = "moo"', 'default = "moo"\ninput_file = "yes"'), "input_file must be bool"),
    ],
)
def test_bad_definitions_get_a_message_naming_the_problem(edit, message):
    with pytest.raises(BadDefinition) as caught:
        load_definition_text(DEFINITION.replace(*edit))
    assert message in str(caught.value)


def test_a_definition_file_must_be_a_small_regular_file(tmp_path):
    import os

    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)  # nothing writes: a blocking open or read would hang here
    for path, why in ((fifo, "not a regular file"), ("/dev/zero", "not a regular file"),
                      (tmp_path / "no.toml", "No such")):
        with pytest.raises(UnreadableDefinition, match=why):
            module_from_source(str(path))
    big = tmp_path / "big.toml"
    big.write_text(DEFINITION + "#" * 70_000)
    with pytest.raises(UnreadableDefinition, match="larger than 65536 bytes"):
        module_from_source(str(big))


def test_bytes_that_do_not_match_the_id_are_refused():
    module = load_definition_text(DEFINITION)
    other = load_definition_text(DEFINITION.replace("moo", "baa"))
    with pytest.raises(BadDefinition, match="does not match module ID"):
        module_from_bytes(module_id(module), definition_bytes(other))
    # Right CID, but not the canonical form: a map with a non-canonical encoding cannot exist,
    # so the check is on content; a truncated body fails the CID first.
    with pytest.raises(BadDefinition, match="does not match"):
        module_from_bytes(module_id(module), definition_bytes(module)[:-1])


def test_catalog_adds_finds_by_id_name_and_version_and_detects_tampering(tmp_path):
    catalog = ModuleCatalog(tmp_path / "modules")
    module = load_definition_text(DEFINITION)
    mid = catalog.add(module)
    fresh = ModuleCatalog(tmp_path / "modules")  # another process (the node) reads the file
    assert fresh.resolve(mid) == (mid, module)
    assert fresh.resolve("say") == (mid, module)
    assert fresh.resolve("say@0.1.0") == (mid, module)
    assert fresh.resolve("hash")[0] == BUILTIN_IDS["hash"]
    assert mid in list(fresh) and len(fresh) == 5
    with pytest.raises(UnknownModule, match=r"unknown module 'nope': not on this node"):
        fresh.resolve("nope")
    (tmp_path / "modules" / f"{mid}.module").write_bytes(
        definition_bytes(load_definition_text(DEFINITION.replace("moo", "baa"))))
    with pytest.raises(UnknownModule, match="corrupt"):
        ModuleCatalog(tmp_path / "modules").resolve(mid)


def test_a_damaged_stored_module_hides_no_other(tmp_path, caplog):
    catalog = ModuleCatalog(tmp_path / "modules")
    good = catalog.add(load_definition_text(DEFINITION))
    junk = tmp_path / "modules" / "bafkreiaaaa.module"
    junk.write_bytes(b"junk")
    (tmp_path / "modules" / "bafkreizero.module").symlink_to("/dev/zero")
    fresh = ModuleCatalog(tmp_path / "modules")
    assert good in list(fresh) and len(fresh) == 5
    assert fresh.resolve("say")[0] == good
    assert set(fresh.corrupt) == {str(junk), str(tmp_path / "modules" / "bafkreizero.module")}
    assert "not a regular file" in fresh.corrupt[str(tmp_path / "modules" / "bafkreizero.module")]
    assert "corrupt" in caplog.text


def _git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
                        "PATH": "/usr/bin:/bin"})


def test_a_module_from_a_git_repository_at_a_pinned_commit(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git("init", "-q", cwd=repo)
    (repo / "module.toml").write_text(DEFINITION)
    _git("add", "module.toml", cwd=repo)
    _git("commit", "-qm", "v1", cwd=repo)
    first = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                           text=True, check=True).stdout.strip()
    (repo / "module.toml").write_text(DEFINITION.replace("moo", "baa"))
    _git("commit", "-qam", "v2", cwd=repo)
    pinned = module_from_source(f"git+{repo}@{first}")
    assert pinned == load_definition_text(DEFINITION)  # the commit's file, not the newest
    with pytest.raises(BadDefinition, match="40-hex-digit commit"):
        module_from_source(f"git+{repo}@main")
    assert module_from_source(f"git+{repo}@{first.upper()}") == pinned
    with pytest.raises(UnreadableDefinition, match="git show failed: fatal: path 'missing"):
        module_from_source(f"git+{repo}@{first}#missing.toml")
    with pytest.raises(UnreadableDefinition, match=r"git clone failed: fatal: .* does not "):
        module_from_source(f"git+{tmp_path / 'nowhere'}@{first}")
    with pytest.raises(BadDefinition, match="inside the repository"):
        module_from_source(f"git+{repo}@{first}#../x.toml")
