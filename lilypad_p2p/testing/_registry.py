"""The local OCI registry (`lilypad_p2p.localnet.local_registry`) for tests: skipped where
docker-registry or skopeo is missing, as every real part is (a failure in CI)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from lilypad_p2p import localnet
from lilypad_p2p.testing._real_parts import require_real


def require_registry() -> None:
    """`require_real` for docker-registry and skopeo (scripts/setup installs both)."""
    missing = localnet.registry_missing()
    if missing:
        require_real("a local registry", missing)


@contextlib.contextmanager
def local_registry(directory: Path) -> Iterator[localnet.LocalRegistry]:
    """`lilypad_p2p.localnet.local_registry`, after `require_registry`."""
    require_registry()
    with localnet.local_registry(directory) as registry:
        yield registry
