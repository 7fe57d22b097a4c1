"""The simnet's user-defined module: an image built offline, served by a local registry
(Debian's docker-registry, pushed with skopeo), and a definition the clients add to their homes.

Workloads name it `registry`; providers accept it by repository prefix (`[modules]
allow_repositories`), fetch its definition from the clients over `/lilypad/module/1`, and pull
its image by digest at agreement time, as with any module a user publishes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker

from lilypad_p2p.exec import ModuleCatalog, load_definition_text, module_id
from lilypad_p2p.localnet import local_registry, module_image

REGISTRY_MODULE = "registry"
REPOSITORY = "simnet/say"


@dataclass(frozen=True, slots=True)
class RegistryModule:
    module_id: str
    definition: str
    provider_config: str  # a `[modules]` table: must come last in a config file

    def add_to(self, home: Path) -> None:
        ModuleCatalog(home / "modules").add(load_definition_text(self.definition))


@contextlib.contextmanager
def registry_module(work: Path) -> Iterator[RegistryModule]:
    """Build and push the image, yield the module; the registry stops when the block ends."""
    archive = module_image(work, "simnet-say", seed=work.name)
    with local_registry(work / "registry") as registry:
        reference = registry.reference(REPOSITORY,
                                       registry.push_archive(archive.archive, REPOSITORY, "v1"))
        with contextlib.suppress(docker.errors.ImageNotFound):  # a pull must really happen
            docker.from_env().api.remove_image(reference, force=True)
        definition = f"""
name = "simnet-say"
description = "The simnet's user-defined module, pulled from a local registry."
image = "{reference}"
command = ["/bin/sh", "-c", 'echo "$1" > /outputs/said.txt', "say", "{{text}}"]
outputs = ["said.txt"]
[resources]
milli_cpu = 250
memory_mb = 32
disk_mb = 4
[params.text]
kind = "str"
"""
        yield RegistryModule(
            module_id(load_definition_text(definition)), definition,
            f'[modules]\nallow = ["hash", "wordcount", "random"]\n'
            f'allow_repositories = ["{registry.host}/simnet/"]\n')
