"""Executor overhead against a bare `docker run`, sealing throughput, and first-run cost.

    python benchmarks/exec.py [--repetitions 30] [--warmup 3] [--pull-sizes 1,16,64]
                              [--pull-only]

Side by side in one run, interleaved so both see the same machine load: our runner's wall time
for a trivial job (`/bin/true` in the busybox module image, sealed empty inputs, full sandbox,
output tarball + CID, container removed) against `docker run --rm --network none <image> true`
from the docker CLI. Also times seal + unseal of 10 MiB. Prints p50/p90 and a breakdown of where
our runner's time goes; writes benchmarks/results/exec.json.

First run with a pull (`--pull-sizes`, MiB of incompressible padding): for each size an image is
built offline, pushed to a local registry (docker-registry + skopeo), removed from the engine,
and a job on it is run twice: the first run pulls it by digest (manifest checked, size bounded)
before running, the second finds it cached. `--pull-only` skips the overhead part and keeps its
last figures in the results file.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

import trio
from nacl.public import PrivateKey

from lilypad_p2p.exec import (
    Executor,
    JobInputs,
    JobSpec,
    Module,
    Resources,
    RunTimings,
    seal_for,
    unseal,
)

OVERHEAD_TARGET = 0.15
SEALING_TARGET_S = 0.100
SEALING_BYTES = 10 * 1024 * 1024
DOCKER_RUN_TIMEOUT_S = 60.0
JOB_TIMEOUT_S = 60.0
RESULTS = Path(__file__).parent / "results" / "exec.json"
NOOP = Module(
    name="noop",
    image="recipe:busybox",
    command=("/bin/true",),
    resources=Resources(milli_cpu=1000, memory_bytes=64 * 2**20, disk_bytes=2**20),
)


def percentiles(samples: list[float]) -> dict[str, float]:
    deciles = statistics.quantiles(samples, n=10, method="inclusive")
    return {"p50": statistics.median(samples), "p90": deciles[8], "n": len(samples)}


def bare_docker_run(image_id: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        ["docker", "run", "--rm", "--network", "none", image_id, "true"],
        check=True,
        timeout=DOCKER_RUN_TIMEOUT_S,
    )
    return time.perf_counter() - started


async def measure(repetitions: int, warmup: int) -> dict:
    executor = await Executor.connect(modules={"noop": NOOP})
    image_id, _ = await executor.build_image("busybox")
    provider = PrivateKey.generate()
    sealed = seal_for(provider.public_key, JobInputs().encode())

    ours: list[float] = []
    bare: list[float] = []
    breakdown: list[RunTimings] = []
    for round_index in range(warmup + repetitions):
        # Alternate which goes first so neither always runs right after the other's cleanup.
        order = ("ours", "bare") if round_index % 2 == 0 else ("bare", "ours")
        for which in order:
            if which == "bare":
                elapsed = await trio.to_thread.run_sync(bare_docker_run, image_id)
                if round_index >= warmup:
                    bare.append(elapsed)
            else:
                started = time.perf_counter()
                result = await executor.run(
                    JobSpec("noop"), sealed, provider, timeout_s=JOB_TIMEOUT_S
                )
                elapsed = time.perf_counter() - started
                if round_index >= warmup:
                    ours.append(elapsed)
                    breakdown.append(result.timings)
    executor.close()

    sealing: list[float] = []
    plaintext = os.urandom(SEALING_BYTES)
    for _ in range(max(5, repetitions // 2)):
        started = time.perf_counter()
        assert unseal(provider, seal_for(provider.public_key, plaintext)) == plaintext
        sealing.append(time.perf_counter() - started)

    ours_p = percentiles(ours)
    bare_p = percentiles(bare)
    phases = {
        phase: statistics.median(getattr(t, phase) for t in breakdown)
        for phase in RunTimings.__slots__
    }
    return {
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "image_id": image_id,
        "runner_s": ours_p,
        "bare_docker_run_s": bare_p,
        "overhead_p50": ours_p["p50"] / bare_p["p50"] - 1,
        "overhead_p90": ours_p["p90"] / bare_p["p90"] - 1,
        "overhead_target": OVERHEAD_TARGET,
        "runner_phase_median_s": phases,
        "seal_unseal_10mib_s": percentiles(sealing),
        "seal_unseal_target_s": SEALING_TARGET_S,
    }


async def measure_pulls(sizes_mib: list[int], work: Path) -> list[dict]:
    """First run (pull + run) against the cached run, per image size."""
    import docker

    from lilypad_p2p.exec import ModuleCatalog, PullLimits, load_definition_text
    from lilypad_p2p.localnet import module_image
    from lilypad_p2p.testing import local_registry

    provider = PrivateKey.generate()
    sealed = seal_for(provider.public_key, JobInputs().encode())
    rows = []
    with local_registry(work / "registry") as registry:
        for size in sizes_mib:
            archive = module_image(work, f"bench-{size}", padding_bytes=size * 2**20,
                                   seed=str(time.time()))
            reference = registry.reference(
                f"bench/pull-{size}", registry.push_archive(archive.archive, f"bench/pull-{size}",
                                                            "v1"))
            catalog = ModuleCatalog()
            mid = catalog.add(load_definition_text(
                f'name = "pull-{size}"\nimage = "{reference}"\ncommand = ["/bin/true"]\n'
                "[resources]\nmilli_cpu = 1000\nmemory_mb = 64\ndisk_mb = 1\n"))
            executor = await Executor.connect(modules=catalog,
                                              pull_limits=PullLimits(2**31, 600))
            try:
                timings = []
                for _ in range(2):
                    started = time.perf_counter()
                    await executor.run(JobSpec(mid), sealed, provider, timeout_s=JOB_TIMEOUT_S)
                    timings.append(time.perf_counter() - started)
            finally:
                executor.close()
                docker.from_env().api.remove_image(reference, force=True)
            from lilypad_p2p.exec import download_size

            rows.append({"padding_mib": size, "download_bytes": download_size(reference),
                         "first_run_s": timings[0], "cached_run_s": timings[1],
                         "pull_s": timings[0] - timings[1]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repetitions", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--pull-sizes", default="1,16,64",
                        help="MiB of padding per pulled image, comma-separated ('' skips)")
    parser.add_argument("--pull-only", action="store_true")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    sizes = [int(part) for part in args.pull_sizes.split(",") if part.strip()]
    if args.pull_only:
        figures = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    else:
        figures = trio.run(measure, args.repetitions, args.warmup)
        figures["load_average_1m_at_start"] = load_before
        figures["load_average_1m_at_end"] = os.getloadavg()[0]
    if sizes:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="lilypad-bench-pull-") as work:
            pull_load = os.getloadavg()[0]
            figures["first_run_with_pull"] = {
                "rows": trio.run(measure_pulls, sizes, Path(work)),
                "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "load_average_1m_at_start": pull_load,
                "load_average_1m_at_end": os.getloadavg()[0],
            }
        print("first run with a pull from a local registry vs cached:")
        for row in figures["first_run_with_pull"]["rows"]:
            print(f"  {row['download_bytes'] / 2**20:7.1f} MiB download: first run "
                  f"{row['first_run_s']:.3f} s, cached {row['cached_run_s']:.3f} s, "
                  f"pull {row['pull_s']:.3f} s")
    if args.pull_only:
        RESULTS.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
        print(f"wrote {RESULTS}")
        return

    runner, bare = figures["runner_s"], figures["bare_docker_run_s"]
    sealing = figures["seal_unseal_10mib_s"]
    print(f"trivial job, {runner['n']} repetitions each, interleaved")
    print(f"  {'':<28}{'p50':>10}{'p90':>10}")
    print(f"  {'our runner':<28}{runner['p50']:>9.3f}s{runner['p90']:>9.3f}s")
    print(f"  {'docker run --rm --network none':<28}{bare['p50']:>9.3f}s{bare['p90']:>9.3f}s")
    print(
        f"  overhead p50 {figures['overhead_p50']:+.1%}, p90 {figures['overhead_p90']:+.1%} "
        f"(target <= {OVERHEAD_TARGET:.0%})"
    )
    print(
        "  runner phases (median s): "
        + ", ".join(
            f"{name.removesuffix('_s')} {value:.4f}"
            for name, value in figures["runner_phase_median_s"].items()
        )
    )
    print(
        f"seal + unseal 10 MiB: p50 {sealing['p50'] * 1000:.1f} ms, "
        f"p90 {sealing['p90'] * 1000:.1f} ms (target <= {SEALING_TARGET_S * 1000:.0f} ms)"
    )
    print(
        f"load average (1 min): {figures['load_average_1m_at_start']:.2f} at start, "
        f"{figures['load_average_1m_at_end']:.2f} at end"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
