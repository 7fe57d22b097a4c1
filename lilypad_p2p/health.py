"""What keeps a node from doing its work right now, and when to look again. Pure; time is an
argument.

A node does not die when the chain's RPC stops answering, the Docker engine goes away or its
disk fills up: each is a *fault* it reports (`lilypad-p2p status`, the log), retries with
exponential backoff, and clears when the probe succeeds again. While any fault is present the
node is `degraded`; a provider then withdraws its offers and refuses deals, and offers again
once every fault has cleared.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

# Longest error text a fault keeps: our errors end with what to do, so a longer one loses its
# middle (usually a library's message quoted inside), never its head or its advice.
MAX_ERROR_CHARS = 600
# First retry after a failed probe, doubling up to the last.
BACKOFF_INITIAL_S = 1.0
BACKOFF_MAX_S = 30.0


class Fault(enum.StrEnum):
    CHAIN_UNREACHABLE = "chain_unreachable"
    DOCKER_UNREACHABLE = "docker_unreachable"
    DISK_FULL = "disk_full"


# What a user reads for each fault, after its error: what the node does meanwhile.
MEANING = {
    Fault.CHAIN_UNREACHABLE: "no deal can open, settle or be checked on chain; "
                             "retrying with backoff",
    Fault.DOCKER_UNREACHABLE: "no job can run; offers withdrawn and deals refused until "
                              "Docker answers",
    Fault.DISK_FULL: "no job output or deal record can be written safely; offers withdrawn "
                     "until space is freed",
}


def error_line(exc: BaseException) -> str:
    """`exc` as one bounded line for a fault: its first line, the middle cut if too long."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    if len(text) <= MAX_ERROR_CHARS:
        return text
    keep = (MAX_ERROR_CHARS - len(" ... ")) // 2
    return f"{text[:keep]} ... {text[-keep:]}"


@dataclass(frozen=True, slots=True)
class FaultState:
    fault: Fault
    error: str
    since_ms: int
    attempts: int


class Backoff:
    """Delays between retries: initial, doubled each failure, capped; reset on success."""

    def __init__(self, initial_s: float = BACKOFF_INITIAL_S, max_s: float = BACKOFF_MAX_S) -> None:
        if not 0 < initial_s <= max_s:
            raise ValueError("need 0 < initial_s <= max_s")
        self._initial_s, self._max_s = initial_s, max_s
        self._next_s = initial_s

    def next_s(self) -> float:
        delay = self._next_s
        self._next_s = min(self._max_s, self._next_s * 2)
        return delay

    def reset(self) -> None:
        self._next_s = self._initial_s


class Health:
    """The node's current faults. `record` and `clear` say whether anything changed."""

    def __init__(self) -> None:
        self._faults: dict[Fault, FaultState] = {}

    def record(self, fault: Fault, error: str, now_ms: int) -> bool:
        """A probe for `fault` failed with `error`; True if the fault is new."""
        known = self._faults.get(fault)
        if known is None:
            self._faults[fault] = FaultState(fault, error, now_ms, 1)
            return True
        self._faults[fault] = FaultState(fault, error, known.since_ms, known.attempts + 1)
        return False

    def clear(self, fault: Fault) -> bool:
        """A probe for `fault` succeeded; True if it was present."""
        return self._faults.pop(fault, None) is not None

    @property
    def state(self) -> str:
        return "degraded" if self._faults else "ok"

    def faults(self) -> list[FaultState]:
        return sorted(self._faults.values(), key=lambda f: f.fault.value)

    def has(self, fault: Fault) -> bool:
        return fault in self._faults

    def why_no_jobs(self) -> str | None:
        """Why this node cannot take a job now (one line), or None when it can."""
        faults = self.faults()
        if not faults:
            return None
        return "; ".join(f"{f.fault.value.replace('_', ' ')} ({f.error})" for f in faults)

    def describe(self, now_ms: int) -> dict[str, object]:
        return {
            "state": self.state,
            "faults": [
                {"fault": f.fault.value, "error": f.error, "meaning": MEANING[f.fault],
                 "for_s": round((now_ms - f.since_ms) / 1000, 1), "attempts": f.attempts}
                for f in self.faults()
            ],
        }
