"""The modules a node knows: the shipped definitions plus those added to its home.

Shipped modules are TOML definitions under `exec/definitions/`, all built offline (`recipe:`
images). Added modules live in `<home>/modules/<module ID>.module`, each file the canonical
definition bytes, so a file is checked against its name whenever it is read: a corrupted or
swapped file is refused, never run.

A module is referred to by its ID (`bafkrei...`); for convenience a shipped module also by its
name (`hash`), and an added one by `name` or `name@version` when that is unambiguous.

A definition received from a peer (a job creator's, for a proposal or a mediation request) is
held in memory only, the latest `RECEIVED_HELD`, until `keep` stores it because a deal depends
on it: any peer can name a module, so storing each one fetched would let one peer fill the disk.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType

from lilypad_p2p.exec._definition import (
    MAX_DEFINITION_BYTES,
    definition_bytes,
    load_definition_file,
    module_from_bytes,
    module_id,
)
from lilypad_p2p.exec._errors import BadDefinition, UnknownModule
from lilypad_p2p.exec._modules import Module
from lilypad_p2p.files import read_bounded

log = logging.getLogger(__name__)

DEFINITIONS_DIR = Path(__file__).parent / "definitions"
MODULE_SUFFIX = ".module"
# Received definitions held before a deal needs them: a proposal's checks (policy, image) take
# seconds, and a provider weighs a handful of proposals at once; 64 of at most 64 KiB each is
# at most 4 MiB.
RECEIVED_HELD = 64


def _shipped() -> dict[str, Module]:
    modules = (load_definition_file(path) for path in sorted(DEFINITIONS_DIR.glob("*.toml")))
    return {module.name: module for module in modules}


BUILTIN_MODULES: Mapping[str, Module] = MappingProxyType(_shipped())
BUILTIN_IDS: Mapping[str, str] = MappingProxyType(
    {name: module_id(module) for name, module in BUILTIN_MODULES.items()}
)


class ModuleCatalog(Mapping[str, Module]):
    """Module ID -> Module, for the shipped modules and those added under `directory`.

    As a mapping it is keyed by ID, but looking up a shipped name (or an unambiguous name or
    name@version of an added module) also works. Reads go to disk on a miss, so a module added
    by `lilypad-p2p modules add` while the node runs is found by the node.
    """

    def __init__(self, directory: Path | None = None) -> None:
        self._directory = directory
        self._modules: dict[str, Module] = {
            BUILTIN_IDS[name]: module for name, module in BUILTIN_MODULES.items()
        }
        self._builtin_ids = frozenset(self._modules)
        self._corrupt: dict[str, str] = {}
        self._received: OrderedDict[str, Module] = OrderedDict()

    @property
    def directory(self) -> Path | None:
        return self._directory

    def resolve(self, ref: str) -> tuple[str, Module]:
        """The (ID, module) that `ref` names.

        Raises:
            UnknownModule: nothing here by that ID or name (says how to add it), or a name
                several added modules share.
        """
        if ref in BUILTIN_IDS:
            return BUILTIN_IDS[ref], BUILTIN_MODULES[ref]
        module = self._load(ref)
        if module is not None:
            return ref, module
        by_name = [
            (mid, m) for mid, m in self._all().items()
            if ref in (m.name, f"{m.name}@{m.version}")
        ]
        if len(by_name) == 1:
            return by_name[0]
        if by_name:
            raise UnknownModule(
                f"module name {ref!r} is ambiguous: {sorted(mid for mid, _ in by_name)}; "
                "name it by ID or name@version"
            )
        raise UnknownModule(
            f"unknown module {ref!r}: not on this node; add it with `lilypad-p2p modules add "
            "PATH` (or git+URL@COMMIT); `lilypad-p2p modules list` shows what is here"
        )

    def add(self, module: Module) -> str:
        """Store `module` (if it is not shipped) and return its ID."""
        mid = module_id(module)
        if mid not in self._builtin_ids:
            self._write(mid, definition_bytes(module))
        self._modules[mid] = module
        return mid

    def add_definition(self, expected_id: str, data: bytes) -> Module:
        """Hold a definition received from a peer, after checking it is `expected_id`'s: in
        memory (the latest `RECEIVED_HELD`) until `keep` stores it.

        Raises:
            BadDefinition: `data` is not module `expected_id`'s canonical definition.
        """
        module = module_from_bytes(expected_id, data)
        self._received[expected_id] = module
        self._received.move_to_end(expected_id)
        while len(self._received) > RECEIVED_HELD:
            self._received.popitem(last=False)
        return module

    def keep(self, ref: str) -> bool:
        """Store module `ref` if it is a received one held in memory (a deal now needs it);
        whether `ref` is a module here (False: one received and since let go)."""
        module = self._received.pop(ref, None)
        if module is not None:
            self.add(module)
            return True
        try:
            self.resolve(ref)
        except UnknownModule:
            return False
        return True

    def definition(self, mid: str) -> bytes | None:
        """The canonical definition bytes of module `mid`, if known here."""
        module = self._modules.get(mid) or self._load(mid)
        return definition_bytes(module) if module is not None else None

    def is_builtin(self, mid: str) -> bool:
        return mid in self._builtin_ids

    def __getitem__(self, ref: str) -> Module:
        try:
            return self.resolve(ref)[1]
        except UnknownModule:
            raise KeyError(ref) from None

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._all()))

    def __len__(self) -> int:
        return len(self._all())

    @property
    def corrupt(self) -> Mapping[str, str]:
        """Stored files that are not the module they are named for (path -> why), found by
        the last listing: left out of it, so that one damaged file hides no other module."""
        return MappingProxyType(self._corrupt)

    def _all(self) -> dict[str, Module]:
        if self._directory is not None and self._directory.is_dir():
            for path in self._directory.glob("*" + MODULE_SUFFIX):
                try:
                    self._load(path.name.removesuffix(MODULE_SUFFIX))
                except UnknownModule as exc:
                    if str(path) not in self._corrupt:
                        log.warning("%s", exc)
                    self._corrupt[str(path)] = str(exc)
        return dict(self._modules)

    def _load(self, mid: str) -> Module | None:
        known = self._modules.get(mid) or self._received.get(mid)
        if known is not None or self._directory is None or "/" in mid or not mid:
            return known
        path = self._directory / (mid + MODULE_SUFFIX)
        if not path.exists():
            return None
        try:
            module = module_from_bytes(mid, read_bounded(path, MAX_DEFINITION_BYTES))
        except (OSError, BadDefinition) as exc:
            raise UnknownModule(f"stored module {path} is corrupt ({exc}); delete it") from exc
        self._modules[mid] = module
        return module

    def _write(self, mid: str, data: bytes) -> None:
        if self._directory is None:
            return
        self._directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        target = self._directory / (mid + MODULE_SUFFIX)
        temporary = target.with_suffix(".tmp")
        try:
            temporary.write_bytes(data)
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)
