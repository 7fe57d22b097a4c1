"""What this machine can offer as a provider: its capacity, and the ResourceOffer it signs."""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

import psutil

from lilypad_p2p import wire
from lilypad_p2p.exec import detect_gpus

# A resource offer lives an hour; its owner re-publishes it until then.
DEFAULT_OFFER_LIFETIME_MS = 3600 * 1000
# Default price of one job on this node, in wei, until pricing is configurable.
DEFAULT_PRICE_PER_JOB_WEI = 10**15
DEFAULT_COLLATERAL_WEI = 2 * 10**15


@dataclass(frozen=True, slots=True)
class Capacity:
    milli_cpu: int
    ram_mb: int
    disk_mb: int
    gpu_count: int = 0
    gpu_vram_mb: int = 0


def detect_capacity(work_dir: Path) -> Capacity:
    """This machine's CPUs (as usable by this process), RAM, free disk under `work_dir`, and
    its NVIDIA GPUs (count and the smallest VRAM, via nvidia-smi when present)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    ram_mb = psutil.virtual_memory().total // (1024 * 1024)
    disk_mb = shutil.disk_usage(work_dir).free // (1024 * 1024)
    gpus = detect_gpus()
    return Capacity(milli_cpu=(cpus or 1) * 1000, ram_mb=ram_mb, disk_mb=disk_mb,
                    gpu_count=gpus.count, gpu_vram_mb=gpus.vram_mb)


def resource_offer(
    *,
    provider: str,
    market: str,
    capacity: Capacity,
    modules: tuple[str, ...],
    now_ms: int,
    chain_ids: tuple[int, ...],
    lifetime_ms: int = DEFAULT_OFFER_LIFETIME_MS,
    trusted_mediators: tuple[str, ...] = (),
    price_per_job_wei: int = DEFAULT_PRICE_PER_JOB_WEI,
) -> wire.ResourceOffer:
    return wire.ResourceOffer(
        market=market,
        provider=provider,
        spec=wire.ResourceSpec(
            milli_cpu=capacity.milli_cpu,
            ram_mb=capacity.ram_mb,
            disk_mb=capacity.disk_mb,
            gpu_count=capacity.gpu_count,
            gpu_vram_mb=capacity.gpu_vram_mb,
        ),
        modules=modules,
        price_per_job_wei=price_per_job_wei,
        collateral_wei=DEFAULT_COLLATERAL_WEI,
        trusted_mediators=trusted_mediators,
        chain_ids=tuple(sorted(chain_ids)),
        created_at=now_ms,
        expires_at=now_ms + lifetime_ms,
        nonce=secrets.randbits(63),
    )
