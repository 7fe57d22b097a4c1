"""Module definitions: a module is a document (TOML), identified by the CID of its canonical form.

A definition file, all keys but `name`, `image`, `command` and `[resources]` optional:

    name = "cowsay"
    version = "1.0.0"
    description = "Say something"
    image = "localhost:5000/demo/cowsay@sha256:<64 hex>"   # or "recipe:busybox"
    command = ["/bin/sh", "-c", 'echo "$1" > /outputs/said.txt', "say", "{text}"]
    deterministic = true
    max_run_time_s = 60
    outputs = ["said.txt"]

    [resources]
    milli_cpu = 500
    memory_mb = 64
    disk_mb = 16
    gpus = 0            # GPUs: Docker device requests on a provider that has them
    gpu_vram_mb = 0     # per GPU
    max_processes = 64

    [params.text]
    kind = "str"        # int | str | bool
    description = "what to say"
    default = "moo"
    max_length = 200    # str; int takes minimum/maximum; any kind takes choices = [...]
    # input_file = true # str: names a file the job reads from /inputs (`run` needs it given)

The canonical form is the definition as a map with every default filled in and nothing else,
encoded as canonical msgpack (`wire.encode`: sorted keys, shortest forms). The module ID is the
CIDv1 (raw, sha2-256) of those bytes, so two files that differ only in layout, comments or
spelled-out defaults name the same module, and any change of meaning is a different ID.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lilypad_p2p.exec._errors import BadDefinition, UnreadableDefinition
from lilypad_p2p.exec._modules import Module, Param, Resources
from lilypad_p2p.files import read_bounded
from lilypad_p2p.wire import (
    MAX_DISK_MB,
    MAX_GPU_COUNT,
    MAX_GPU_VRAM_MB,
    MAX_MILLI_CPU,
    MAX_RAM_MB,
    WireError,
    content_id,
    decode,
    encode,
)

MIB = 1024 * 1024
# A definition is a few hundred bytes; this leaves room for long scripts in the command.
MAX_DEFINITION_BYTES = 64 * 1024
_TOP_KEYS = frozenset({
    "name", "version", "description", "image", "command", "deterministic", "max_run_time_s",
    "outputs", "resources", "params",
})
_RESOURCE_KEYS = frozenset({
    "milli_cpu", "memory_mb", "disk_mb", "gpus", "gpu_vram_mb", "max_processes",
})
# What a resource offer can carry: a module that asks more could never be matched.
_RESOURCE_LIMITS = {
    "milli_cpu": MAX_MILLI_CPU, "memory_mb": MAX_RAM_MB, "disk_mb": MAX_DISK_MB,
    "gpus": MAX_GPU_COUNT, "gpu_vram_mb": MAX_GPU_VRAM_MB,
}
_PARAM_KEYS = frozenset({
    "kind", "description", "default", "minimum", "maximum", "max_length", "choices", "input_file",
})


def canonical_definition(module: Module) -> dict[str, Any]:
    """The definition of `module` as a plain map, every default spelled out."""
    resources = module.resources
    return {
        "name": module.name,
        "version": module.version,
        "description": module.description,
        "image": module.image,
        "command": list(module.command),
        "deterministic": module.deterministic,
        "max_run_time_s": module.max_run_time_s,
        "outputs": list(module.outputs),
        "resources": {
            "milli_cpu": resources.milli_cpu,
            "memory_mb": resources.memory_bytes // MIB,
            "disk_mb": resources.disk_bytes // MIB,
            "gpus": resources.gpu_count,
            "gpu_vram_mb": resources.gpu_vram_mb,
            "max_processes": resources.max_processes,
        },
        "params": {name: _param_map(param) for name, param in sorted(module.params.items())},
    }


def definition_bytes(module: Module) -> bytes:
    """The canonical encoding of `module`'s definition: what its ID is the CID of."""
    return encode(canonical_definition(module))


def module_id(module: Module) -> str:
    """The module ID: CIDv1 of the canonical definition (`bafkrei...`)."""
    return content_id(definition_bytes(module))


def parse_definition(raw: Mapping[str, Any], where: str = "definition") -> Module:
    """Build a module from a decoded definition (TOML or canonical msgpack map).

    Raises:
        BadDefinition: a key is unknown, missing or of the wrong type, or a value out of range;
            the message names the key.
    """
    try:
        return _parse(raw, where)
    except BadDefinition:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        text = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
        raise BadDefinition(f"{where}: {text}") from exc


def load_definition_text(text: str, where: str = "definition") -> Module:
    """Parse a TOML definition.

    Raises:
        BadDefinition: not TOML, or not a valid definition.
    """
    if len(text.encode()) > MAX_DEFINITION_BYTES:
        raise BadDefinition(f"{where}: larger than {MAX_DEFINITION_BYTES} bytes")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadDefinition(f"{where}: not valid TOML ({exc})") from exc
    except RecursionError as exc:  # tomllib recurses once per nested array or table
        raise BadDefinition(f"{where}: nested too deeply to be a module definition") from exc
    return parse_definition(raw, where)


def load_definition_file(path: Path) -> Module:
    """Parse the TOML definition at `path`.

    Raises:
        UnreadableDefinition: `path` is missing, not a regular file, too large or not UTF-8.
        BadDefinition: not a valid definition.
    """
    try:
        data = read_bounded(path, MAX_DEFINITION_BYTES)
        text = data.decode()
    except (OSError, UnicodeDecodeError) as exc:
        raise UnreadableDefinition(f"cannot read module definition {path}: {exc}") from exc
    return load_definition_text(text, str(path))


def module_from_bytes(expected_id: str, data: bytes) -> Module:
    """The module whose canonical definition is `data`, checked against `expected_id`.

    Raises:
        BadDefinition: `data` is not the canonical definition of module `expected_id`.
    """
    if len(data) > MAX_DEFINITION_BYTES:
        raise BadDefinition(f"definition of {expected_id} is larger than {MAX_DEFINITION_BYTES} B")
    actual = content_id(data)
    if actual != expected_id:
        raise BadDefinition(
            f"definition does not match module ID {expected_id}: its content is {actual}"
        )
    try:
        raw = decode(data, max_bytes=MAX_DEFINITION_BYTES)
    except WireError as exc:
        raise BadDefinition(f"definition of {expected_id} is not canonical msgpack: {exc}") from exc
    if not isinstance(raw, dict):
        raise BadDefinition(f"definition of {expected_id} is not a map")
    module = parse_definition(raw, f"definition of {expected_id}")
    if definition_bytes(module) != data:
        raise BadDefinition(f"definition of {expected_id} is not in canonical form")
    return module


def _parse(raw: Mapping[str, Any], where: str) -> Module:
    _only(raw, _TOP_KEYS, where)
    resources = raw["resources"]
    _only(resources, _RESOURCE_KEYS, f"{where}: [resources]")
    for key, limit in _RESOURCE_LIMITS.items():
        if isinstance(value := resources.get(key), int) and value >= limit:
            raise BadDefinition(f"{where}: [resources] {key} = {value} is more than any "
                                f"resource offer can carry (below {limit})")
    params = raw.get("params", {})
    if not isinstance(params, Mapping):
        raise BadDefinition(f"{where}: params must be a table of tables")
    description = _typed(raw, "description", str, where, "")
    # It is shown on terminals, and may come from a peer: no escape sequences, one line.
    if not description.isprintable():
        raise BadDefinition(f"{where}: description must be printable text on one line (no "
                            "control characters)")
    command = _strings(raw, "command", where)
    if any("\x00" in element for element in command):
        raise BadDefinition(f"{where}: command contains a NUL character")
    return Module(
        name=_typed(raw, "name", str, where),
        version=_typed(raw, "version", str, where, "1.0.0"),
        description=description,
        image=_typed(raw, "image", str, where),
        command=tuple(command),
        deterministic=_typed(raw, "deterministic", bool, where, True),
        max_run_time_s=_typed(raw, "max_run_time_s", int, where, 600),
        outputs=tuple(_strings(raw, "outputs", where, ())),
        resources=Resources(
            milli_cpu=_typed(resources, "milli_cpu", int, where),
            memory_bytes=_typed(resources, "memory_mb", int, where) * MIB,
            disk_bytes=_typed(resources, "disk_mb", int, where) * MIB,
            gpu_count=_typed(resources, "gpus", int, where, 0),
            gpu_vram_mb=_typed(resources, "gpu_vram_mb", int, where, 0),
            max_processes=_typed(resources, "max_processes", int, where, 64),
        ),
        params={name: _parse_param(name, spec, where) for name, spec in params.items()},
    )


def _parse_param(name: str, spec: object, where: str) -> Param:
    here = f"{where}: [params.{name}]"
    if not isinstance(spec, Mapping):
        raise BadDefinition(f"{here} must be a table")
    _only(spec, _PARAM_KEYS, here)
    choices = spec.get("choices", [])
    if not isinstance(choices, list):
        raise BadDefinition(f"{here}: choices must be a list")
    try:
        return Param(
            kind=_typed(spec, "kind", str, here),
            description=_typed(spec, "description", str, here, ""),
            default=spec.get("default"),
            minimum=_typed(spec, "minimum", int, here, None),
            maximum=_typed(spec, "maximum", int, here, None),
            max_length=_typed(spec, "max_length", int, here, None),
            choices=tuple(choices),
            input_file=_typed(spec, "input_file", bool, here, False),
        )
    except ValueError as exc:
        raise BadDefinition(f"{here}: {exc}") from exc


def _param_map(param: Param) -> dict[str, Any]:
    values = {
        "kind": param.kind,
        "description": param.description,
        "default": param.default,
        "minimum": param.minimum,
        "maximum": param.maximum,
        "max_length": param.max_length,
        "choices": list(param.choices) if param.choices else None,
        # Left out when false, so definitions that predate the key keep their IDs.
        "input_file": True if param.input_file else None,
    }
    return {key: value for key, value in values.items() if value is not None}


_MISSING = object()


def _typed(
    raw: Mapping[str, Any], key: str, kind: type, where: str, default: Any = _MISSING
) -> Any:
    if key not in raw:
        if default is _MISSING:
            raise BadDefinition(f"{where}: missing key {key!r}")
        return default
    value = raw[key]
    # bool is an int subclass: `milli_cpu = true` must not pass as 1.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadDefinition(f"{where}: {key} must be {kind.__name__}, got {value!r}")
    return value


def _strings(raw: Mapping[str, Any], key: str, where: str, default: Any = _MISSING) -> list[str]:
    value = _typed(raw, key, list, where, default)
    if not all(isinstance(item, str) for item in value):
        raise BadDefinition(f"{where}: {key} must be a list of strings")
    return list(value)


def _only(raw: object, allowed: frozenset[str], where: str) -> None:
    if not isinstance(raw, Mapping):
        raise BadDefinition(f"{where} must be a table")
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise BadDefinition(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
