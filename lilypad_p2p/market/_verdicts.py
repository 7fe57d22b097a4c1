"""Mediation verdicts: what one mediator concludes from its runs, and a k-of-n tally. Pure.

A mediator re-runs the disputed job twice (`judge_runs`):
- its two runs differ -> NON_DETERMINISTIC;
- they agree with the provider's committed hash -> PROVIDER_CORRECT;
- they agree with each other but not with the provider -> PROVIDER_WRONG.
The verdict's result hash is the hash the mediator computed, except for NON_DETERMINISTIC,
where every mediator signs the provider's committed hash: their own runs differ from machine to
machine, and k signatures must be over the same (outcome, hash) to count on chain.

`VerdictTally` collects verdicts whose signatures the caller has already checked (recovering
EIP-712 signers is chain/'s job; market/ stays free of it). Whichever (outcome, hash) first has
k distinct members is the quorum; verdicts that disagree with it are the dissent, kept for the
record; members that never answered are simply missing, and do not
block a quorum of the others. A member that signs two different verdicts equivocates: both its
verdicts stay in the tally (either may be what the contract sees) and it is listed.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

HASH_BYTES = 32
SIGNATURE_BYTES = 65


class VerdictOutcome(enum.IntEnum):
    """Numbered as the contract's `Outcome` (and `chain.Outcome`)."""

    PROVIDER_CORRECT = 1
    PROVIDER_WRONG = 2
    NON_DETERMINISTIC = 3


def _hash32(name: str, value: object) -> None:
    if type(value) is not bytes or len(value) != HASH_BYTES:
        raise ValueError(f"{name} must be {HASH_BYTES} bytes")


def judge_runs(
    provider_hash: bytes, run_hashes: Sequence[bytes]
) -> tuple[VerdictOutcome, bytes]:
    """The verdict (outcome, result hash) a mediator signs after its own runs (see module)."""
    _hash32("provider_hash", provider_hash)
    if len(run_hashes) < 2:
        raise ValueError("a mediator runs the job at least twice")
    for run in run_hashes:
        _hash32("run hash", run)
    if len(set(run_hashes)) > 1:
        return VerdictOutcome.NON_DETERMINISTIC, provider_hash
    computed = run_hashes[0]
    if computed == provider_hash:
        return VerdictOutcome.PROVIDER_CORRECT, computed
    return VerdictOutcome.PROVIDER_WRONG, computed


@dataclass(frozen=True, slots=True)
class SignedVerdict:
    """One mediator's verdict and its EIP-712 signature (already checked to be `mediator`'s)."""

    mediator: str
    outcome: VerdictOutcome
    result_hash: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if not (isinstance(self.mediator, str) and self.mediator.startswith("0x")
                and len(self.mediator) == 42):
            raise ValueError(f"mediator must be an address, got {self.mediator!r}")
        object.__setattr__(self, "outcome", VerdictOutcome(self.outcome))
        _hash32("result_hash", self.result_hash)
        if type(self.signature) is not bytes or len(self.signature) != SIGNATURE_BYTES:
            raise ValueError(f"signature must be {SIGNATURE_BYTES} bytes")

    @property
    def ruling(self) -> tuple[VerdictOutcome, bytes]:
        return self.outcome, self.result_hash


@dataclass(frozen=True, slots=True)
class Quorum:
    """k or more members signed the same verdict: what `resolve` needs.

    `signatures` are ordered by signer address ascending, as the contract requires.
    """

    outcome: VerdictOutcome
    result_hash: bytes
    signers: tuple[str, ...]
    signatures: tuple[bytes, ...]


class TallyRejected(ValueError):
    """A verdict that cannot count: not from a member of the consortium, or a repeat."""


class VerdictTally:
    """The verdicts heard for one deal, and whether k of them agree."""

    def __init__(self, consortium: Sequence[str], threshold: int) -> None:
        members = tuple(consortium)
        if not members or len({m.lower() for m in members}) != len(members):
            raise ValueError("the consortium must be non-empty, without duplicates")
        if not 1 <= threshold <= len(members):
            raise ValueError(f"threshold must be 1..{len(members)}, got {threshold}")
        self.consortium = members
        self.threshold = threshold
        self._members = {m.lower(): m for m in members}
        self._verdicts: list[SignedVerdict] = []

    def add(self, verdict: SignedVerdict) -> Quorum | None:
        """Count `verdict`; returns the quorum once there is one.

        Raises:
            TallyRejected: the signer is not a member, or sent this exact verdict before.
        """
        if verdict.mediator.lower() not in self._members:
            raise TallyRejected(f"{verdict.mediator} is not in the deal's consortium")
        for earlier in self._verdicts:
            if earlier.mediator.lower() == verdict.mediator.lower() and (
                earlier.ruling == verdict.ruling
            ):
                raise TallyRejected(f"{verdict.mediator} already sent this verdict")
        self._verdicts.append(verdict)
        return self.quorum()

    def quorum(self) -> Quorum | None:
        """The first (in arrival order) verdict that k distinct members signed, if any."""
        for first in self._verdicts:
            backing = {
                v.mediator.lower(): v for v in reversed(self._verdicts) if v.ruling == first.ruling
            }
            if len(backing) >= self.threshold:
                ordered = sorted(backing.values(), key=lambda v: int(v.mediator, 16))
                return Quorum(
                    outcome=first.outcome,
                    result_hash=first.result_hash,
                    signers=tuple(self._members[v.mediator.lower()] for v in ordered),
                    signatures=tuple(v.signature for v in ordered),
                )
        return None

    def dissent(self) -> tuple[SignedVerdict, ...]:
        """Verdicts that disagree with the quorum (all of them while there is none)."""
        quorum = self.quorum()
        if quorum is None:
            return tuple(self._verdicts)
        agreed = (quorum.outcome, quorum.result_hash)
        return tuple(v for v in self._verdicts if v.ruling != agreed)

    def missing(self) -> tuple[str, ...]:
        """Members that have sent no verdict."""
        heard = {v.mediator.lower() for v in self._verdicts}
        return tuple(m for m in self.consortium if m.lower() not in heard)

    def equivocators(self) -> tuple[str, ...]:
        """Members that signed more than one different verdict for this deal."""
        rulings: dict[str, set[tuple[VerdictOutcome, bytes]]] = {}
        for v in self._verdicts:
            rulings.setdefault(v.mediator.lower(), set()).add(v.ruling)
        return tuple(self._members[m] for m, seen in rulings.items() if len(seen) > 1)

    def verdicts(self) -> tuple[SignedVerdict, ...]:
        """Every verdict counted, in arrival order."""
        return tuple(self._verdicts)


# Verdicts an EquivocationWatch remembers (one per deal and mediator); the oldest go first.
WATCH_CAPACITY = 4096


class EquivocationWatch:
    """The first verdict each mediator signed for each deal, across every round of asking.

    A second, different verdict from the same mediator for the same deal is proof that it
    equivocated (the contract slashes its stake for the pair); `observe` returns that pair once.
    Memory is bounded: past `capacity` (deal, mediator) entries the oldest are forgotten.
    """

    def __init__(self, capacity: int = WATCH_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._capacity = capacity
        self._first: OrderedDict[tuple[bytes, str], SignedVerdict] = OrderedDict()
        self._proven: set[tuple[bytes, str]] = set()

    def observe(
        self, deal_id: bytes, verdict: SignedVerdict
    ) -> tuple[SignedVerdict, SignedVerdict] | None:
        """Record `verdict` (its signature already checked); the proof pair on equivocation."""
        _hash32("deal_id", deal_id)
        key = (deal_id, verdict.mediator.lower())
        first = self._first.get(key)
        if first is None:
            self._first[key] = verdict
            if len(self._first) > self._capacity:
                self._first.popitem(last=False)
            return None
        if first.ruling == verdict.ruling or key in self._proven:
            return None
        self._proven.add(key)
        return first, verdict
