"""The node's probes of what it depends on (chain RPCs, the Docker engine, free disk), run
under its nursery: each failure is a fault in `Health`, reported and retried with backoff,
never a reason to die (see `health.py`)."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from lilypad_p2p.chain import ChainError
from lilypad_p2p.config import NodeConfig
from lilypad_p2p.errors import LilypadError
from lilypad_p2p.health import BACKOFF_MAX_S, Backoff, Fault, Health, error_line
from lilypad_p2p.identity import Identity
from lilypad_p2p.logs import event
from lilypad_p2p.roles import DealChains, open_deal_chains

if TYPE_CHECKING:
    from lilypad_p2p.exec._docker import DockerEngine

log = logging.getLogger("lilypad_p2p.health")

# How often a healthy node looks again (a faulty one retries with backoff, sooner at first).
# The work itself notices a failing dependency too: this bounds how long an idle node takes.
PROBE_INTERVAL_S = 10.0
# A probe that takes longer than this counts as failed (an RPC or engine that hangs).
PROBE_TIMEOUT_S = 10.0
# Below this much free space under the home, the disk counts as full: a job's outputs, the
# database's WAL and a result file must still fit.
DISK_RESERVE_BYTES = 64 * 1024 * 1024


def note(health: Health, fault: Fault, error: str, now_ms: int) -> None:
    if health.record(fault, error, now_ms):
        event(log, "node.degraded", logging.WARNING, fault=fault.value, error=error)


def recover(health: Health, fault: Fault) -> bool:
    if health.clear(fault):
        event(log, "node.recovered", fault=fault.value)
        return True
    return False


async def open_chains_patiently(config: NodeConfig, identity: Identity, health: Health,
                                clock_ms: Callable[[], int]) -> DealChains:
    """The deal chains, retried with backoff while a chain does not answer (a wrong setting,
    a ConfigError, is still fatal: waiting would not fix it)."""
    backoff = Backoff()
    while True:
        try:
            chains = await open_deal_chains(config, identity)
        except ChainError as exc:
            note(health, Fault.CHAIN_UNREACHABLE, error_line(exc), clock_ms())
            await trio.sleep(backoff.next_s())
            continue
        recover(health, Fault.CHAIN_UNREACHABLE)
        return chains


class _DockerProbe:
    """Pings the engine over one kept connection, made again after a failure: a new client per
    probe cost a client's construction and two requests every few seconds on every provider."""

    def __init__(self) -> None:
        self._engine: DockerEngine | None = None

    def __call__(self) -> None:
        from lilypad_p2p.exec._docker import DockerEngine

        if self._engine is None:
            self._engine = DockerEngine.connect()
            return
        try:
            self._engine.ping()
        except LilypadError:
            self._engine.close()
            self._engine = None
            raise


class Watchdog:
    """Probes every dependency, then calls `react` (which acts on `health` idempotently);
    a reaction that fails on a fault the probes missed is retried after the next round."""

    def __init__(self, health: Health, *, home: Path, chains: Callable[[], DealChains | None],
                 docker: bool, clock_ms: Callable[[], int],
                 react: Callable[[], Awaitable[None]]) -> None:
        self.health = health
        self._home = home
        self._chains = chains
        self._docker = docker
        self._clock_ms = clock_ms
        self._react = react
        self._probe_docker = _DockerProbe()

    async def run(self) -> None:
        backoff = Backoff()
        while True:
            await self.probe_all()
            try:
                await self._react()
            except LilypadError as exc:  # e.g. the chain failed between probe and reaction
                event(log, "health.reaction_failed", logging.WARNING, error=error_line(exc))
            if self.health.faults():
                await trio.sleep(min(backoff.next_s(), BACKOFF_MAX_S))
            else:
                backoff.reset()
                await trio.sleep(PROBE_INTERVAL_S)

    async def probe_all(self) -> None:
        """Probe everything once, recording each fault that appears or clears."""
        chains = self._chains()
        if chains is not None:
            await self._probe(Fault.CHAIN_UNREACHABLE, _chain_probe(chains))
        if self._docker:
            await self._probe(Fault.DOCKER_UNREACHABLE, self._probe_docker)
        await self._probe(Fault.DISK_FULL, self._probe_disk)

    async def _probe(self, fault: Fault, probe: Callable[[], None]) -> None:
        try:
            with trio.fail_after(PROBE_TIMEOUT_S):
                await trio.to_thread.run_sync(probe, abandon_on_cancel=True)
        except trio.TooSlowError:
            note(self.health, fault, f"no answer within {PROBE_TIMEOUT_S:.0f} s",
                 self._clock_ms())
        except (LilypadError, OSError) as exc:  # ChainError, DockerUnavailable, statvfs
            note(self.health, fault, error_line(exc), self._clock_ms())
        else:
            recover(self.health, fault)

    def _probe_disk(self) -> None:
        free = shutil.disk_usage(self._home).free
        if free < DISK_RESERVE_BYTES:
            raise OSError(f"{free // 2**20} MiB free under {self._home}, "
                          f"{DISK_RESERVE_BYTES // 2**20} MiB needed")


def _chain_probe(chains: DealChains) -> Callable[[], None]:
    def probe() -> None:
        for chain in chains.values():
            chain.sync.chain.block_number()

    return probe
