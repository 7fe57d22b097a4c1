"""The `faulty-jobs` workload: jobs built to fail, providers that claim failures they did not have.

Workloads name the module `failing`: a user module (a shell script parameter on the shipped
busybox recipe, 16 MB of memory, 1 MB of outputs, 4 s at most) whose jobs fail, round-robin, the
ways a job fails by itself: a non-zero exit, out of memory, past the maximum run time, over the
output allowance. Clients add its definition to their homes; providers allow any module that
fits and fetch the definition from the clients, mediators from whoever asks them.
`faults.false_failure_share` of the providers run with `cheat_false_failure` (claim `exit 1` for
every job without running it; no job of the workload exits 1, so every such claim is false).

Invariants: no honest provider lost collateral (none of its deals timed out or was ruled wrong,
and it is not poorer), every false failure claim slashed (ruled PROVIDER_WRONG, the cheat not
richer), every failing job to an honest provider ended paid as a failure result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lilypad_p2p.exec import ModuleCatalog, load_definition_text, module_id

if TYPE_CHECKING:
    from simnet._plan import NodePlan

FAILING_MODULE = "failing"
DEFINITION = """
name = "simnet-failing"
version = "1.0.0"
description = "Runs its script parameter; the simnet's jobs built to fail."
image = "recipe:busybox"
command = ["/bin/sh", "-c", 'eval "$1"', "failing", "{script}"]
max_run_time_s = 4

[resources]
milli_cpu = 250
memory_mb = 16
disk_mb = 1

[params.script]
kind = "str"
max_length = 4096
"""
# Round-robin; none exits 1, the status a false claim names.
SCRIPTS = (
    "echo failing on purpose >&2; exit 3",
    'x=$(head -c 64000000 /dev/zero | tr "\\0" a); echo ${#x}',
    "sleep 30",
    "head -c 3000000 /dev/zero > /outputs/big",
)
FALSE_FAILURE_CONFIG = "cheat_false_failure = true\n"


@dataclass(frozen=True, slots=True)
class FailingModule:
    module_id: str

    @property
    def provider_config(self) -> str:
        """A `[modules]` table (must come last in a config file): any module that fits, so a
        provider takes the definition it lacks from the job creator (an `allow` by ID would need
        it on the provider already)."""
        return "[modules]\nallow_any = true\n"

    @staticmethod
    def add_to(home: Path) -> None:
        ModuleCatalog(home / "modules").add(load_definition_text(DEFINITION))


def failing_module() -> FailingModule:
    return FailingModule(module_id(load_definition_text(DEFINITION)))


def failing_job(index: int) -> dict[str, Any]:
    return {"module": FAILING_MODULE, "params": {"script": SCRIPTS[index % len(SCRIPTS)]}}


def faulty_invariants(
    plans: list[NodePlan],
    deals: list[dict[str, Any]],
    before: dict[str, int],
    after: dict[str, int],
    plan_of: Callable[[dict[str, Any]], NodePlan | None],
    failing_id: str,
    check: Callable[[str, bool, str], None],
) -> None:
    honest = [p for p in plans if p.role == "provider" and not p.cheater and not p.spammer]
    honest_names = {p.name for p in honest}
    lost = [d["key"] for d in deals if (p := plan_of(d)) is not None and p.name in honest_names
            and (d["phase"] == "timed_out" or d.get("outcome") == "PROVIDER_WRONG")]
    poorer = [p.name for p in honest if after[p.name] < before[p.name]]
    check("no_honest_provider_lost_collateral", not lost and not poorer,
          f"honest deals timed out or ruled wrong: {lost}; honest providers poorer: {poorer}")
    claims = [d for d in deals if (p := plan_of(d)) is not None and p.false_failure]
    unslashed = [d["key"] for d in claims if d.get("outcome") != "PROVIDER_WRONG"]
    richer = [p.name for p in plans if p.false_failure and after[p.name] > before[p.name]]
    check("every_false_failure_claim_slashed", bool(claims) and not unslashed and not richer,
          f"{len(claims)} false failure claims, not ruled wrong: {unslashed}, "
          f"false claimants who gained: {richer}")
    failing = [d for d in deals if d.get("module_id") == failing_id
               and (p := plan_of(d)) is not None and p.name in honest_names]
    unpaid = [(d["key"], d["phase"], d.get("failure")) for d in failing
              if d["phase"] != "settled" or not d.get("failure")]
    check("failed_jobs_paid_as_failure_results", bool(failing) and not unpaid,
          f"{len(failing)} failing jobs to honest providers; not settled as failures: {unpaid}")
