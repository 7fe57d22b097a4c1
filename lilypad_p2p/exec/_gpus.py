"""GPU detection for a provider's offers: count, model and VRAM, from `nvidia-smi`.

A node with NVIDIA GPUs and the driver has `nvidia-smi`; without it the node has no GPUs to
offer. The parse is pure (tested with recorded outputs); `detect_gpus` runs the tool.
A job asking for GPUs gets them as a Docker device request (`_docker.py`), which needs the
NVIDIA container toolkit on the provider.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from dataclasses import dataclass

log = logging.getLogger(__name__)

NVIDIA_SMI_TIMEOUT_S = 10.0
NVIDIA_SMI_QUERY = (
    "--query-gpu=index,name,memory.total",
    "--format=csv,noheader,nounits",
)


@dataclass(frozen=True, slots=True)
class Gpu:
    index: int
    model: str
    vram_mb: int


@dataclass(frozen=True, slots=True)
class GpuSummary:
    """What an offer advertises: how many GPUs, the smallest VRAM among them, their models."""

    count: int = 0
    vram_mb: int = 0
    models: tuple[str, ...] = ()


def parse_nvidia_smi(output: str) -> list[Gpu]:
    """The GPUs in `nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader,nounits`.

    Lines that do not parse (a driver warning, `[N/A]` memory) are skipped, not guessed.
    """
    gpus = []
    for line in output.splitlines():
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != 3:
            continue
        index, model, memory = fields
        if not index.isdigit() or not memory.isdigit() or not model:
            continue
        gpus.append(Gpu(index=int(index), model=model, vram_mb=int(memory)))
    return gpus


def summarize(gpus: list[Gpu]) -> GpuSummary:
    """Per-GPU VRAM is the smallest of them: a job may land on any of the GPUs."""
    if not gpus:
        return GpuSummary()
    return GpuSummary(
        count=len(gpus),
        vram_mb=min(gpu.vram_mb for gpu in gpus),
        models=tuple(sorted({gpu.model for gpu in gpus})),
    )


def detect_gpus(nvidia_smi: str | None = None) -> GpuSummary:
    """This machine's GPUs via `nvidia-smi` (none if it is absent or fails). Blocks."""
    tool = nvidia_smi or shutil.which("nvidia-smi")
    if tool is None:
        return GpuSummary()
    try:
        done = subprocess.run(
            [tool, *NVIDIA_SMI_QUERY],
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("nvidia-smi failed (%s): offering no GPUs", exc)
        return GpuSummary()
    if done.returncode != 0:
        log.warning("nvidia-smi exited %s: offering no GPUs", done.returncode)
        return GpuSummary()
    return summarize(parse_nvidia_smi(done.stdout))
