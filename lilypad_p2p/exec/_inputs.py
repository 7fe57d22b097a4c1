"""The job-inputs document: what a job creator seals to a provider.

Format (canonical msgpack, the same rules as the wire format: maps with sorted string keys, no
floats, binary as msgpack bin):

    {"files": {<relative path>: <bytes>, ...},     # mounted read-only at /inputs/<relative path>
     "params": {<name>: <int | str | bool>, ...},  # checked against the module's typed parameters
     "type": "job-inputs",
     "v": 1}

Paths are relative POSIX paths whose components use only `A-Z a-z 0-9 . _ + -` (no `.`/`..`
components, no empty components); unknown fields, non-canonical encodings and out-of-range values
are rejected, so one set of inputs has exactly one encoding.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import msgpack

from lilypad_p2p.exec._errors import MalformedInputs

INPUTS_VERSION = 1
INPUTS_TYPE = "job-inputs"
MAX_INPUT_FILES = 1000
MAX_INPUT_BYTES = 256 * 1024 * 1024
MAX_PATH_CHARS = 255
MAX_PARAM_STR_CHARS = 64 * 1024
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_PATH_COMPONENT = re.compile(r"^[A-Za-z0-9._+-]+$")

ParamValue = int | str | bool


def check_input_path(path: str) -> str:
    """Return `path` if it is an acceptable relative input path, else raise MalformedInputs."""
    if not isinstance(path, str) or not path or len(path) > MAX_PATH_CHARS:
        raise MalformedInputs(f"input path {path!r}: must be 1..{MAX_PATH_CHARS} characters")
    for component in path.split("/"):
        if component in ("", ".", "..") or not _PATH_COMPONENT.match(component):
            raise MalformedInputs(
                f"input path {path!r}: components must be non-empty, not '.' or '..', "
                "and use only letters, digits, '.', '_', '+', '-'"
            )
    return path


def check_param_value(name: str, value: object) -> ParamValue:
    """Return `value` if it is a representable parameter value, else raise MalformedInputs."""
    if not isinstance(name, str) or not name:
        raise MalformedInputs(f"parameter name {name!r}: must be a non-empty string")
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise MalformedInputs(f"parameter {name!r}: integer {value} outside signed 64-bit")
        return value
    if isinstance(value, str):
        if len(value) > MAX_PARAM_STR_CHARS:
            raise MalformedInputs(f"parameter {name!r}: longer than {MAX_PARAM_STR_CHARS} chars")
        return value
    raise MalformedInputs(f"parameter {name!r}: {type(value).__name__} is not int, str or bool")


@dataclass(frozen=True, slots=True)
class JobInputs:
    """Input files and parameter values of one job; validated on construction."""

    files: Mapping[str, bytes] = field(default_factory=dict)
    params: Mapping[str, ParamValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.files, Mapping) or not isinstance(self.params, Mapping):
            raise MalformedInputs("files and params must be maps")
        if len(self.files) > MAX_INPUT_FILES:
            raise MalformedInputs(f"{len(self.files)} input files; at most {MAX_INPUT_FILES}")
        files: dict[str, bytes] = {}
        for path, content in sorted(self.files.items()):
            if not isinstance(content, bytes | bytearray):
                raise MalformedInputs(f"input file {path!r}: content must be bytes")
            files[check_input_path(path)] = bytes(content)
        _check_no_file_directory_clash(files)
        total = sum(len(content) for content in files.values())
        if total > MAX_INPUT_BYTES:
            raise MalformedInputs(f"inputs total {total} bytes; at most {MAX_INPUT_BYTES}")
        params = {
            name: check_param_value(name, value) for name, value in sorted(self.params.items())
        }
        object.__setattr__(self, "files", MappingProxyType(files))
        object.__setattr__(self, "params", MappingProxyType(params))

    def encode(self) -> bytes:
        """The canonical msgpack bytes of this document."""
        return msgpack.packb(
            {
                "files": dict(self.files),
                "params": dict(self.params),
                "type": INPUTS_TYPE,
                "v": INPUTS_VERSION,
            },
            use_bin_type=True,
        )

    @classmethod
    def decode(cls, data: bytes) -> JobInputs:
        """Parse canonical job-inputs bytes.

        Raises:
            MalformedInputs: not msgpack, wrong shape or version, or not canonically encoded.
        """
        try:
            document: Any = msgpack.unpackb(
                data, raw=False, strict_map_key=True, use_list=True, max_bin_len=MAX_INPUT_BYTES
            )
        except (ValueError, msgpack.UnpackException, TypeError) as exc:
            raise MalformedInputs(f"job inputs are not valid msgpack: {exc}") from exc
        if not isinstance(document, dict) or set(document) != {"files", "params", "type", "v"}:
            raise MalformedInputs("job inputs must be a map with exactly files, params, type, v")
        if document["v"] != INPUTS_VERSION or document["type"] != INPUTS_TYPE:
            raise MalformedInputs(
                f"unsupported job inputs v={document['v']!r} type={document['type']!r}; "
                f"expected v={INPUTS_VERSION} type={INPUTS_TYPE!r}"
            )
        if not isinstance(document["files"], dict) or not isinstance(document["params"], dict):
            raise MalformedInputs("job inputs: files and params must be maps")
        inputs = cls(files=document["files"], params=document["params"])
        if inputs.encode() != bytes(data):
            raise MalformedInputs("job inputs are not canonically encoded (key order or types)")
        return inputs


def _check_no_file_directory_clash(files: Mapping[str, bytes]) -> None:
    directories = {path.rsplit("/", 1)[0] for path in files if "/" in path}
    parents = {
        "/".join(d.split("/")[: i + 1]) for d in directories for i in range(d.count("/") + 1)
    }
    clashes = sorted(parents & set(files))
    if clashes:
        raise MalformedInputs(f"input paths {clashes} are used both as files and as directories")
