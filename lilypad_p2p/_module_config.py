"""The `[modules]` table of config.toml: a provider's module policy and its image-pull limits.

    [modules]
    allow = ["hash", "bafkrei..."]           # module IDs (shipped modules also by name)
    allow_images = ["sha256:<64 hex>"]       # any module whose image has this digest
    allow_repositories = ["localhost:5000/team/"]   # any module whose image is under this
    allow_any = false                         # any module at all (its spec must fit)
    any_within = "2000/4096/10000/0"          # or: any needing <= mcpu/RAM MB/disk MB/GPUs
    max_image_mb = 2048                       # largest image download accepted
    pull_timeout_s = 300                      # longest pull accepted

With none of `allow*`/`any_within` set, a provider runs the shipped modules only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from lilypad_p2p.errors import ConfigError

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_MODULE_REF = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}(@[0-9A-Za-z.+-]{1,32})?|bafkrei[a-z2-7]{52}")
_LIMITS = re.compile(r"([0-9]{1,9})/([0-9]{1,9})/([0-9]{1,10})/([0-9]{1,3})")
_KEYS = ("allow", "allow_images", "allow_repositories", "allow_any", "any_within",
         "max_image_mb", "pull_timeout_s")


def _strings(
    setting: str, check: Callable[[str], bool], hint: str
) -> Callable[[object, str], tuple[str, ...]]:
    def parse(value: object, source: str) -> tuple[str, ...]:
        if isinstance(value, str):
            items = [part.strip() for part in value.split(",") if part.strip()]
        elif isinstance(value, list) and all(isinstance(item, str) for item in value):
            items = list(value)
        else:
            raise ConfigError(f"modules.{setting} ({source}): expected a list of strings")
        for item in items:
            if not check(item):
                raise ConfigError(f"modules.{setting} ({source}): {item!r} is not {hint}")
        return tuple(items)
    return parse


def _bool(value: object, source: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "0", "false", "no", ""):
        return value.lower() in ("1", "true", "yes")
    raise ConfigError(f"modules.allow_any ({source}): expected true or false, got {value!r}")


def _limits(value: object, source: str) -> tuple[int, int, int, int]:
    match = _LIMITS.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ConfigError(
            f"modules.any_within ({source}): expected \"mcpu/ram_mb/disk_mb/gpus\" such as "
            f"\"2000/4096/10000/0\", got {value!r}"
        )
    cpu, ram, disk, gpus = (int(part) for part in match.groups())
    return cpu, ram, disk, gpus


def _positive(setting: str) -> Callable[[object, str], int]:
    def parse(value: object, source: str) -> int:
        try:
            number = int(value) if isinstance(value, int | float | str) else 0
        except (ValueError, OverflowError):  # "ten", nan, inf
            number = 0
        if isinstance(value, bool) or number <= 0:
            raise ConfigError(f"modules.{setting} ({source}): expected a positive integer")
        return number
    return parse


MODULE_SETTINGS: tuple[tuple[str, tuple[str, ...], str, Callable[[object, str], object]], ...] = (
    ("module_allow", ("modules", "allow"), "LILYPAD_MODULES_ALLOW",
     _strings("allow", lambda item: bool(_MODULE_REF.fullmatch(item)),
              "a module name or a module ID")),
    ("module_allow_images", ("modules", "allow_images"), "LILYPAD_MODULES_ALLOW_IMAGES",
     _strings("allow_images", lambda item: bool(_DIGEST.fullmatch(item)), "sha256:<64 hex>")),
    ("module_allow_repositories", ("modules", "allow_repositories"),
     "LILYPAD_MODULES_ALLOW_REPOSITORIES",
     _strings("allow_repositories", lambda item: "@" not in item and len(item) <= 100,
              "a repository prefix (no '@', at most 100 characters)")),
    ("module_allow_any", ("modules", "allow_any"), "LILYPAD_MODULES_ALLOW_ANY", _bool),
    ("module_any_within", ("modules", "any_within"), "LILYPAD_MODULES_ANY_WITHIN", _limits),
    ("max_image_mb", ("modules", "max_image_mb"), "LILYPAD_MAX_IMAGE_MB",
     _positive("max_image_mb")),
    ("pull_timeout_s", ("modules", "pull_timeout_s"), "LILYPAD_PULL_TIMEOUT_S",
     _positive("pull_timeout_s")),
)


def check_module_table(data: Mapping[str, Any], path: Path) -> None:
    """Refuse a `[modules]` that is not a table of the known keys."""
    table = data.get("modules", {})
    if not isinstance(table, Mapping) or set(table) - set(_KEYS):
        raise ConfigError(f"{path}: [modules] must be a table of {list(_KEYS)}")
