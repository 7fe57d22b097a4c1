"""Modules: an image pinned by content, a command template, typed parameters, resource needs.

A command template is an argv list, never a shell string: an element that is exactly `{name}` is
replaced by the value of parameter `name` as one argv element, every other element is literal
(so shell scripts inside a template may use braces freely). Values therefore cannot inject
arguments or shell syntax; a script that wants them reads them as `"$1"`, `"$2"`, ...

`image` is either `recipe:<name>` — an image built offline and deterministically from
`lilypad_p2p/exec/images/<name>/` by `lilypad-p2p modules build`, pinned by its content-addressed
image ID — or `<repository>@sha256:<64 hex>`, a registry image pinned by digest and pulled when
missing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

from lilypad_p2p.exec._errors import BadParameters, MalformedInputs
from lilypad_p2p.exec._inputs import ParamValue, check_input_path

if TYPE_CHECKING:
    from typing_extensions import TypeIs

MODULE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MODULE_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+-]{0,31}$")
MAX_RUN_TIME_S = 24 * 3600
MAX_PROCESSES = 1 << 22
PARAM_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")
RECIPE_IMAGE_PREFIX = "recipe:"
RECIPE_IMAGE = re.compile(r"^recipe:([a-z0-9][a-z0-9_-]{0,63})$")
REGISTRY_IMAGE = re.compile(r"^([a-z0-9][a-z0-9._/:-]*)@sha256:([0-9a-f]{64})$")
_PLACEHOLDER = re.compile(r"^\{([a-z_][a-z0-9_]{0,63})\}$")

ParamKind = Literal["int", "str", "bool"]
_KIND_TYPES: dict[str, type] = {"int": int, "str": str, "bool": bool}
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")
_BOOL_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def _is_kind(value: object, kind: str) -> TypeIs[ParamValue]:
    # bool is an int subclass in Python: an int parameter must not accept True.
    return isinstance(value, _KIND_TYPES[kind]) and not (kind == "int" and isinstance(value, bool))


@dataclass(frozen=True, slots=True)
class Param:
    """One typed parameter of a module; `default` None means the job must give it."""

    kind: ParamKind
    description: str = ""
    default: ParamValue | None = None
    minimum: int | None = None
    maximum: int | None = None
    max_length: int | None = None
    choices: tuple[ParamValue, ...] = ()
    # The value names a file the job reads from /inputs (a relative input path, checked): a job
    # without that file is refused before it is posted, as it could only fail on the provider.
    input_file: bool = False

    def __post_init__(self) -> None:
        if self.kind not in _KIND_TYPES:
            raise ValueError(f"parameter kind {self.kind!r} is not one of {sorted(_KIND_TYPES)}")
        if (self.minimum is not None or self.maximum is not None) and self.kind != "int":
            raise ValueError("minimum/maximum apply to int parameters only")
        if self.max_length is not None and self.kind != "str":
            raise ValueError("max_length applies to str parameters only")
        if self.input_file and self.kind != "str":
            raise ValueError("input_file applies to str parameters only")
        if self.max_length is not None and self.max_length < 0:
            raise ValueError(f"max_length {self.max_length} is negative")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"minimum {self.minimum} is above maximum {self.maximum}")
        if len({repr(choice) for choice in self.choices}) < len(self.choices):
            raise ValueError(f"choices {list(self.choices)} repeat a value")
        given: list[tuple[str, object]] = [("choice", value) for value in self.choices]
        if self.default is not None:
            given.append(("default", self.default))
        for name, value in given:
            try:
                self.check(name, value)
            except BadParameters as exc:  # a definition's mistake, not a job's
                raise ValueError(str(exc)) from exc

    def from_text(self, name: str, text: str) -> ParamValue:
        """`text` (as typed on a command line) read as this parameter's kind, then checked."""
        value: object = text
        if self.kind == "int" and _WHOLE_NUMBER.fullmatch(text.strip()):
            value = int(text.strip())
        elif self.kind == "bool" and text.strip().lower() in _BOOL_WORDS:
            value = _BOOL_WORDS[text.strip().lower()]
        return self.check(name, value)

    def check(self, name: str, value: object) -> ParamValue:
        """Return `value` if it fits this parameter, else raise BadParameters naming `name`."""
        if not _is_kind(value, self.kind):
            raise BadParameters(f"parameter {name!r}: expected {self.kind}, got {value!r}")
        if isinstance(value, int):  # only int parameters have a minimum or a maximum
            if self.minimum is not None and value < self.minimum:
                raise BadParameters(
                    f"parameter {name!r}: {value} is below the minimum {self.minimum}")
            if self.maximum is not None and value > self.maximum:
                raise BadParameters(
                    f"parameter {name!r}: {value} is above the maximum {self.maximum}")
        if isinstance(value, str):
            if self.max_length is not None and len(value) > self.max_length:
                raise BadParameters(f"parameter {name!r}: longer than {self.max_length} characters")
            if "\x00" in value:
                raise BadParameters(f"parameter {name!r}: contains a NUL character")
            if self.input_file:  # a path under /inputs, as the job's files are named
                try:
                    check_input_path(value)
                except MalformedInputs as exc:
                    raise BadParameters(f"parameter {name!r} names an input file: {exc}") from None
        if self.choices and value not in self.choices:
            raise BadParameters(f"parameter {name!r}: {value!r} is not one of {list(self.choices)}")
        return value


@dataclass(frozen=True, slots=True)
class Resources:
    """What one run of a module needs and is limited to."""

    milli_cpu: int
    memory_bytes: int
    disk_bytes: int
    gpu_count: int = 0
    max_processes: int = 64
    # Per GPU; 0 means any GPU will do.
    gpu_vram_mb: int = 0

    def __post_init__(self) -> None:
        if self.milli_cpu <= 0 or self.memory_bytes < 6 * 1024 * 1024:
            raise ValueError(
                "milli_cpu must be positive and memory at least 6 MiB (Docker's floor)"
            )
        if self.disk_bytes <= 0 or self.gpu_count < 0 or self.max_processes <= 0:
            raise ValueError("disk_bytes and max_processes must be positive, gpu_count >= 0")
        if self.gpu_vram_mb < 0 or (self.gpu_vram_mb and not self.gpu_count):
            raise ValueError("gpu_vram_mb must be >= 0, and 0 when no GPU is asked for")
        if self.max_processes > MAX_PROCESSES:
            raise ValueError(f"max_processes must be at most {MAX_PROCESSES} (Linux's pid_max)")


@dataclass(frozen=True, slots=True)
class Module:
    """A runnable job kind: see the module docstring for `image` and `command`."""

    name: str
    image: str
    command: tuple[str, ...]
    resources: Resources
    params: Mapping[str, Param] = field(default_factory=dict)
    deterministic: bool = True
    description: str = ""
    version: str = "1.0.0"
    # The longest one run may take; a deal's deadline may cut it shorter.
    max_run_time_s: int = 600
    # What the module writes under /outputs (documentation for its users; not enforced).
    outputs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not MODULE_NAME.match(self.name):
            raise ValueError(f"module name {self.name!r} does not match {MODULE_NAME.pattern}")
        if not MODULE_VERSION.match(self.version):
            raise ValueError(f"module {self.name}: version {self.version!r} is not like 1.2.3")
        if not 0 < self.max_run_time_s <= MAX_RUN_TIME_S:
            raise ValueError(f"module {self.name}: max_run_time_s must be in 1..{MAX_RUN_TIME_S}")
        if not (RECIPE_IMAGE.match(self.image) or REGISTRY_IMAGE.match(self.image)):
            raise ValueError(
                f"module {self.name}: image {self.image!r} must be recipe:<name> or "
                "<repository>@sha256:<64 hex digits>"
            )
        if not self.command:
            raise ValueError(f"module {self.name}: empty command")
        for name in self.params:
            if not PARAM_NAME.match(name):
                raise ValueError(f"module {self.name}: parameter name {name!r} is invalid")
        for element in self.command:
            placeholder = _PLACEHOLDER.match(element)
            if placeholder and placeholder.group(1) not in self.params:
                raise ValueError(f"module {self.name}: {element} names no declared parameter")
        object.__setattr__(self, "command", tuple(self.command))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    def resolve_params(self, given: Mapping[str, ParamValue]) -> dict[str, ParamValue]:
        """Check `given` against the declared parameters and fill in defaults.

        Raises:
            BadParameters: an unknown or missing parameter, or a value of the wrong type or range.
        """
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            raise BadParameters(
                f"module {self.name}: unknown parameter(s) {unknown}; known: {sorted(self.params)}"
            )
        resolved: dict[str, ParamValue] = {}
        for name, param in sorted(self.params.items()):
            if name in given:
                resolved[name] = param.check(name, given[name])
            elif param.default is not None:
                resolved[name] = param.default
            else:
                raise BadParameters(f"module {self.name}: parameter {name!r} is required")
        return resolved

    def params_from_text(self, given: Mapping[str, str]) -> dict[str, ParamValue]:
        """`given` as typed on a command line, each read by its parameter's kind (`-i n=7` is
        the int 7 for an int parameter and the text "7" for a str one), then resolved."""
        read = {name: self.params[name].from_text(name, text) if name in self.params else text
                for name, text in given.items()}  # resolve_params names the unknown ones
        return self.resolve_params(read)

    def render_command(self, given: Mapping[str, ParamValue]) -> tuple[str, ...]:
        """The argv for a run with parameters `given` (checked as in `resolve_params`)."""
        values = self.resolve_params(given)
        argv = []
        for element in self.command:
            placeholder = _PLACEHOLDER.match(element)
            argv.append(_render_value(values[placeholder.group(1)]) if placeholder else element)
        return tuple(argv)


def _render_value(value: ParamValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
