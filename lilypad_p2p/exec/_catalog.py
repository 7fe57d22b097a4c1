"""The modules every node ships, all built offline from Debian's static busybox."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from lilypad_p2p.exec._modules import Module, Param, Resources

MIB = 1024 * 1024
BUSYBOX_IMAGE = "recipe:busybox"
SMALL_JOB = Resources(milli_cpu=500, memory_bytes=64 * MIB, disk_bytes=16 * MIB)

HASH = Module(
    name="hash",
    image=BUSYBOX_IMAGE,
    command=(
        "/bin/sh",
        "-c",
        'printf %s "$2" | "$1"sum | cut -d" " -f1 > /outputs/digest.txt',
        "hash",
        "{algorithm}",
        "{text}",
    ),
    params={
        "text": Param("str", "the text to hash", max_length=64 * 1024),
        "algorithm": Param(
            "str",
            "digest to compute",
            default="sha256",
            choices=("md5", "sha1", "sha256", "sha512"),
        ),
    },
    resources=SMALL_JOB,
    description="Hash a text parameter; writes digest.txt (hex).",
)

WORDCOUNT = Module(
    name="wordcount",
    image=BUSYBOX_IMAGE,
    command=(
        "/bin/sh",
        "-c",
        'set -e; f="/inputs/$1"; '
        'wc -l -w -c < "$f" > /outputs/counts.txt; '
        "tr -s ' \\t\\r' '\\n\\n\\n' < \"$f\" | grep -v '^$' | sort | uniq -c "
        '| sort -k1,1nr -k2,2 | head -n "$2" > /outputs/top-words.txt',
        "wordcount",
        "{file}",
        "{top}",
    ),
    params={
        "file": Param("str", "input file to count", default="input.txt", max_length=255),
        "top": Param(
            "int", "how many most frequent words to list", default=10, minimum=1, maximum=1000
        ),
    },
    resources=SMALL_JOB,
    description="Count lines, words and bytes of an input file and list its most frequent words.",
)

RANDOM = Module(
    name="random",
    image=BUSYBOX_IMAGE,
    command=(
        "/bin/sh",
        "-c",
        'head -c "$1" /dev/urandom > /outputs/random.bin',
        "random",
        "{size}",
    ),
    params={
        "size": Param("int", "bytes of randomness to write", default=32, minimum=1, maximum=4096)
    },
    resources=SMALL_JOB,
    deterministic=False,
    description="Deliberately non-deterministic: writes random bytes (for mediation tests).",
)

PYTHON = Module(
    name="python",
    image="recipe:python",
    command=(
        "/usr/bin/python3.11",
        "-S",
        "-c",
        "import runpy, sys; runpy.run_path('/inputs/' + sys.argv[1], run_name='__main__')",
        "{script}",
    ),
    params={"script": Param("str", "input file to run", default="main.py", max_length=255)},
    resources=Resources(milli_cpu=1000, memory_bytes=256 * MIB, disk_bytes=64 * MIB),
    description="Run a Python 3.11 script from the inputs (standard library only, hash seed 0).",
)

BUILTIN_MODULES: Mapping[str, Module] = MappingProxyType(
    {m.name: m for m in (HASH, WORDCOUNT, RANDOM, PYTHON)}
)
