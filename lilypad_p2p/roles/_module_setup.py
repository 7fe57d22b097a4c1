"""A node's module settings from its config: catalog, provider policy, image-pull limits."""

from __future__ import annotations

from pathlib import Path

from lilypad_p2p.config import NodeConfig
from lilypad_p2p.errors import ConfigError
from lilypad_p2p.exec import BUILTIN_IDS, ModuleCatalog, PullLimits, UnknownModule
from lilypad_p2p.market import ModulePolicy, spec_shortfall
from lilypad_p2p.roles._client_submission import job_spec
from lilypad_p2p.wire import ResourceSpec

MIB = 1024 * 1024


def module_catalog(home: Path) -> ModuleCatalog:
    """The node's modules: the shipped ones and those added under `<home>/modules`."""
    return ModuleCatalog(home / "modules")


def module_policy(config: NodeConfig, catalog: ModuleCatalog) -> ModulePolicy:
    """The provider's `[modules]` policy; with nothing allowed, the shipped modules.

    Raises:
        ConfigError: `allow` names a module that is neither shipped nor added here.
    """
    ids = []
    for ref in config.module_allow:
        try:
            ids.append(catalog.resolve(ref)[0])
        except UnknownModule as exc:
            raise ConfigError(f"modules.allow: {exc}") from exc
    nothing_else = not (config.module_allow_images or config.module_allow_repositories
                        or config.module_allow_any or config.module_any_within)
    if not ids and nothing_else:
        ids = sorted(BUILTIN_IDS.values())
    within = None
    if config.module_any_within is not None:
        cpu, ram, disk, gpus = config.module_any_within
        within = ResourceSpec(milli_cpu=cpu, ram_mb=ram, disk_mb=disk, gpu_count=gpus)
    return ModulePolicy(
        module_ids=tuple(ids),
        image_digests=config.module_allow_images,
        repository_prefixes=config.module_allow_repositories,
        allow_any=config.module_allow_any,
        any_within=within,
    )


def pull_limits(config: NodeConfig) -> PullLimits:
    return PullLimits(max_bytes=config.max_image_mb * MIB, timeout_s=float(config.pull_timeout_s))


def modules_beyond(policy: ModulePolicy, catalog: ModuleCatalog,
                   offered: ResourceSpec) -> list[str]:
    """The modules `policy` names by ID that need more than `offered`, each as "name (needs
    …)": the offer admits them, but no job of theirs matches it."""
    beyond = []
    for mid in policy.module_ids:
        try:
            module = catalog.resolve(mid)[1]
        except UnknownModule:
            continue
        need = job_spec(module)
        if spec_shortfall(need, offered) is not None:
            beyond.append(f"{module.name} (needs {need.milli_cpu} mCPU, {need.ram_mb} MiB RAM, "
                          f"{need.disk_mb} MiB disk, {need.gpu_count} GPU)")
    return beyond
