"""Modules at agreement time: a provider signs a deal only for a module it has, accepts and can
run, and fetches a definition it lacks from the job creator (`/lilypad/module/1`).

Before countersigning, the provider
1. gets the definition: from its catalog, else from the job creator over a stream, checked
   against the module ID (the ID is the CID of the canonical definition, so a definition that
   does not match is refused and never stored);
2. checks that the job offer's image is the definition's, and that the offer's spec covers
   what the module needs (the provider reserves the offer's spec, and runs with the module's);
3. checks its policy against the definition's real image (the job offer's could be left
   empty to dodge an image rule);
4. makes sure the image is present or can be pulled: by digest, within the node's size limit
   and timeout (`exec/_registry.py`). A digest mismatch, a pull failure or an oversized image
   is a refusal, with its reason, before any signature.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from lilypad_p2p import wire
from lilypad_p2p.errors import LilypadError
from lilypad_p2p.exec import (
    RECIPE_IMAGE_PREFIX,
    BadDefinition,
    ExecError,
    Executor,
    Module,
    ModuleCatalog,
    UnknownModule,
)
from lilypad_p2p.logs import event
from lilypad_p2p.market import entry_accepts
from lilypad_p2p.net import MODULE_STREAM, DealTransport, PeerAction

log = logging.getLogger("lilypad_p2p.modules")

# A definition is a few KiB; the job creator answers from its catalog.
MODULE_FETCH_TIMEOUT_S = 10.0
MIB = 1024 * 1024


async def fetch_definition(
    transport: DealTransport,
    peer_id: str,
    module: str,
    catalog: ModuleCatalog,
) -> Module:
    """Module `module` from `peer_id`, checked against its ID and stored in `catalog`.

    A definition that does not match its ID is reported: no honest job creator sends one.

    Raises:
        BadDefinition: the peer's definition does not match the ID (or is invalid).
        UnknownModule: the peer does not have it, cannot be reached, or did not answer in time.
    """
    try:
        with trio.fail_after(MODULE_FETCH_TIMEOUT_S):
            answer = await transport.request(peer_id, MODULE_STREAM,
                                             wire.ModuleRequest(module=module))
    except (trio.TooSlowError, LilypadError) as exc:
        raise UnknownModule(
            f"module {module} is not on this provider and the job creator did not send its "
            f"definition ({type(exc).__name__}: {exc})"
        ) from exc
    if isinstance(answer, wire.DealRefused):
        raise UnknownModule(
            f"module {module}: the job creator refused to send it ({answer.reason})"
        )
    try:
        if answer.module != module:
            raise BadDefinition(f"asked for module {module}, the job creator sent "
                                f"{answer.module}")
        stored = catalog.add_definition(module, answer.definition)
    except BadDefinition as exc:
        transport.report(peer_id, PeerAction.LOW_TOLERANCE, f"module {module}: {exc}")
        raise
    event(log, "module.fetched", module=module, module_name=stored.name, peer=peer_id)
    return stored


def definition_server(
    catalog: ModuleCatalog,
) -> Callable[[str, wire.ModuleRequest], Awaitable[wire.ModuleDefinition | wire.DealRefused]]:
    """The `/lilypad/module/1` handler: a module's canonical definition, if we have it."""

    async def serve(
        peer_id: str, request: wire.ModuleRequest
    ) -> wire.ModuleDefinition | wire.DealRefused:
        try:
            data = catalog.definition(request.module)
        except UnknownModule as exc:
            return wire.DealRefused(reason=str(exc)[:500])
        if data is None:
            return wire.DealRefused(reason=f"no module {request.module} here")
        return wire.ModuleDefinition(module=request.module, definition=data)

    return serve


class ModuleGate:
    """The provider's module checks at agreement time (module docstring)."""

    def __init__(
        self,
        catalog: ModuleCatalog,
        transport: DealTransport | None,
        executor: Callable[[], Awaitable[Executor | None]],
    ) -> None:
        self._catalog = catalog
        self._transport = transport
        self._executor = executor

    @property
    def catalog(self) -> ModuleCatalog:
        return self._catalog

    async def refusal(
        self, peer_id: str, job: wire.JobOffer, offer_entries: tuple[str, ...]
    ) -> str | None:
        """Why the provider must not sign a deal for `job`'s module, or None."""
        try:
            module = await self._definition(peer_id, job.module)
        except (BadDefinition, UnknownModule) as exc:
            return str(exc)
        if job.image and job.image != module.image:
            return (f"the job offer names image {job.image}, but module {job.module}'s "
                    f"definition names {module.image}")
        reason = _spec_shortfall(module, job.spec)
        if reason is not None:
            return reason
        if not any(entry_accepts(entry, job.module, module.image, job.spec)
                   for entry in offer_entries):
            return f"module {job.module} (image {module.image}) is not allowed by this " \
                   "provider's module policy"
        if module.image.startswith(RECIPE_IMAGE_PREFIX):
            return None  # built here, offline, from a recipe we ship
        executor = await self._executor()
        if executor is None:
            return "Docker is not available on this provider"
        try:
            await executor.image_id(job.module)
        except ExecError as exc:
            event(log, "module.image_refused", logging.WARNING, module=job.module,
                  image=module.image, error=str(exc))
            return str(exc)
        return None

    async def _definition(self, peer_id: str, module_id: str) -> Module:
        try:
            return self._catalog.resolve(module_id)[1]
        except UnknownModule:
            if self._transport is None:
                raise
        return await fetch_definition(self._transport, peer_id, module_id, self._catalog)


def _spec_shortfall(module: Module, spec: wire.ResourceSpec) -> str | None:
    needs: dict[str, Any] = {
        "milli_cpu": (module.resources.milli_cpu, spec.milli_cpu),
        "ram_mb": (-(-module.resources.memory_bytes // MIB), spec.ram_mb),
        "disk_mb": (-(-module.resources.disk_bytes // MIB), spec.disk_mb),
        "gpu_count": (module.resources.gpu_count, spec.gpu_count),
    }
    short = [name for name, (need, given) in needs.items() if need > given]
    if short:
        return f"the job offer's spec is below what module {module.name} needs: {short}"
    return None
