"""Which modules a provider runs: its policy, as the entries of its resource offer's `modules`.

Each entry of `ResourceOffer.modules` is one rule; a job offer is accepted when any rule does:

    bafkrei...                  exactly this module ID
    digest:sha256:<64 hex>      any module whose image has this digest
    repo:<prefix>               any module whose registry image starts with <prefix> (end it
                                with "/" to mean one repository namespace)
    any                         any module (its spec must still fit the offer)
    any/<mcpu>/<ram MB>/<disk MB>/<GPUs>   any module needing at most these per job

A job offer carries its module ID and the image its definition names, so solvers decide from
the two offers alone; the provider checks the definition against both before it signs.
Pure: no I/O, used by the solvers and by the provider at agreement time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lilypad_p2p.wire import JobOffer, ResourceSpec

DIGEST_RULE = "digest:"
REPOSITORY_RULE = "repo:"
ANY_RULE = "any"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_ANY_LIMITS = re.compile(r"any/([0-9]{1,9})/([0-9]{1,9})/([0-9]{1,10})/([0-9]{1,3})")


def is_module_id_entry(entry: str) -> bool:
    """Whether the entry names one module (as opposed to a rule over many)."""
    return not (entry.startswith((DIGEST_RULE, REPOSITORY_RULE)) or entry == ANY_RULE
                or entry.startswith(ANY_RULE + "/"))


def entry_accepts(entry: str, module: str, image: str, spec: ResourceSpec) -> bool:
    """Whether one policy entry accepts a job for `module` with `image` needing `spec`."""
    if entry == module:
        return True
    if entry.startswith(DIGEST_RULE):
        digest = entry[len(DIGEST_RULE):]
        return bool(_DIGEST.fullmatch(digest)) and image.endswith("@" + digest)
    if entry.startswith(REPOSITORY_RULE):
        prefix = entry[len(REPOSITORY_RULE):]
        return bool(prefix) and "@sha256:" in image and image.startswith(prefix)
    if entry == ANY_RULE:
        return True
    limits = _ANY_LIMITS.fullmatch(entry)
    if limits is None:
        return False
    cpu, ram, disk, gpus = (int(value) for value in limits.groups())
    return (spec.milli_cpu <= cpu and spec.ram_mb <= ram and spec.disk_mb <= disk
            and spec.gpu_count <= gpus)


def offer_accepts(entries: tuple[str, ...], job: JobOffer) -> bool:
    """Whether a resource offer with these `modules` entries accepts `job`'s module."""
    return any(entry_accepts(entry, job.module, job.image, job.spec) for entry in entries)


@dataclass(frozen=True, slots=True)
class ModulePolicy:
    """A provider's policy (config `[modules]`), turned into offer entries by `entries()`.

    `any_within` None and `allow_any` False: only the listed modules, digests and prefixes.
    """

    module_ids: tuple[str, ...] = ()
    image_digests: tuple[str, ...] = ()
    repository_prefixes: tuple[str, ...] = ()
    allow_any: bool = False
    any_within: ResourceSpec | None = None

    def __post_init__(self) -> None:
        for digest in self.image_digests:
            if not _DIGEST.fullmatch(digest):
                raise ValueError(f"image digest {digest!r} is not sha256:<64 hex digits>")
        for prefix in self.repository_prefixes:
            if not prefix or "@" in prefix:
                raise ValueError(f"repository prefix {prefix!r} must be non-empty, without '@'")

    def entries(self) -> tuple[str, ...]:
        """The resource offer's `modules`: sorted, without duplicates."""
        entries = set(self.module_ids)
        entries.update(DIGEST_RULE + digest for digest in self.image_digests)
        entries.update(REPOSITORY_RULE + prefix for prefix in self.repository_prefixes)
        if self.allow_any:
            entries.add(ANY_RULE)
        elif self.any_within is not None:
            limit = self.any_within
            entries.add(f"any/{limit.milli_cpu}/{limit.ram_mb}/{limit.disk_mb}/{limit.gpu_count}")
        return tuple(sorted(entries))

    def refusal(self, module: str, image: str, spec: ResourceSpec) -> str | None:
        """Why this policy refuses the module, or None if it accepts it."""
        if any(entry_accepts(entry, module, image, spec) for entry in self.entries()):
            return None
        return (f"module {module} (image {image or 'unknown'}) is not allowed by this "
                "provider's module policy")
