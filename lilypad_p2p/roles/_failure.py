"""Failure results: a job that fails for a reason inside the job is a result, not a no-show.

When the provider ran the job as the module specifies and the job itself failed (non-zero
exit, out of memory within the module's memory, over the module's maximum run time, output over
the module's disk allowance, inputs that decrypt but do not fit the module), the provider
commits to a *failure claim* instead of an output tarball:

    claim bytes = CLAIM_MAGIC || canonical msgpack {"failure": class, "exit_code": int}
    result hash = sha256(claim bytes)

The claim holds only what any faithful re-run reproduces (the class, and the exit status for an
exit), so a mediator that re-runs the job computes the same hash exactly as it does for an
output tarball, and the contract needs nothing new: `submitResult`, `settle`, `dispute` and
`resolve` treat the claim's hash like any result hash. The claim bytes begin with a NUL-free
magic that no canonical tarball can start with, and are never a tarball's hash preimage.

What does not reproduce (run time, the limits applied, the logs) travels in a *failure report*
sealed to the job creator in place of the output tarball: the claim, the resource usage, the
sha256 of the logs and the logs, signed by the provider (EIP-191 over the report's body hash),
so a job creator can show anyone what the provider said about its job.

A job creator accepts a failure like an output (the provider is paid the deal's price: the
run used the resources the job creator's module declared, up to their limits) or disputes it;
the consortium then re-runs the job, bounded by the module's maximum run time, and rules
whether the same failure reproduces (DESIGN §6, §7).
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from lilypad_p2p import wire
from lilypad_p2p.errors import PeerMisbehaved
from lilypad_p2p.exec import (
    BadParameters,
    JobFailed,
    JobTimedOut,
    MalformedInputs,
    Module,
    OutOfMemory,
    OutputRejected,
)

CLAIM_MAGIC = b"lilypad-failure-claim/1\n"
# A sealed delivery that starts with this is a failure report; anything else is a tarball. A
# canonical tarball starts with a member name (never NUL) or, when empty, with 1024 NUL bytes.
REPORT_MAGIC = b"\0lilypad-failure-report/1\n"
# The logs a report carries (the executor's log tail is at most this much).
MAX_REPORT_LOG_BYTES = 64 * 1024
# A whole encoded report is at most this (the logs plus a few hundred bytes of fields).
MAX_REPORT_BYTES = MAX_REPORT_LOG_BYTES + 4096


class FailureClass(enum.StrEnum):
    EXIT = "exit"  # the job exited with a non-zero status
    OUT_OF_MEMORY = "out_of_memory"  # killed by the kernel at the module's memory limit
    TIMEOUT = "timeout"  # still running at the module's maximum run time
    OUTPUT_OVER_LIMIT = "output_over_limit"  # outputs over the module's disk allowance
    BAD_INPUTS = "bad_inputs"  # inputs that do not fit the module's format or parameters


class BadFailureReport(PeerMisbehaved):
    """A delivered failure report does not match the committed hash, its logs or its signer."""


@dataclass(frozen=True, slots=True)
class FailureClaim:
    """What a provider commits to on chain when the job failed: reproducible by a re-run."""

    failure: FailureClass
    exit_code: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "failure", FailureClass(self.failure))
        if type(self.exit_code) is not int or not 0 <= self.exit_code <= 255:
            raise ValueError("exit_code must be an int in 0..255")
        if (self.failure is FailureClass.EXIT) != (self.exit_code != 0):
            raise ValueError("an exit failure has a non-zero exit_code, other failures 0")

    def encode(self) -> bytes:
        return CLAIM_MAGIC + wire.encode({"failure": str(self.failure),
                                          "exit_code": self.exit_code})

    def digest(self) -> bytes:
        """The result hash a provider commits to (and a mediator recomputes)."""
        return hashlib.sha256(self.encode()).digest()


def classify(exc: Exception, *, timeout_s: float, module: Module) -> FailureClaim | None:
    """The failure claim for a run that ended in `exc`, or None when the job is not to blame
    (Docker, the image, this node's disk or spool; or a timeout shorter than the module's
    maximum, e.g. cut by the deal's deadline)."""
    if isinstance(exc, OutputRejected):  # also when the full disk made the job exit non-zero
        return FailureClaim(FailureClass.OUTPUT_OVER_LIMIT)
    if isinstance(exc, OutOfMemory):
        return FailureClaim(FailureClass.OUT_OF_MEMORY)
    if isinstance(exc, JobFailed):
        return FailureClaim(FailureClass.EXIT, exc.exit_code & 0xFF or 1)
    if isinstance(exc, JobTimedOut):
        if timeout_s >= module.max_run_time_s:
            return FailureClaim(FailureClass.TIMEOUT)
        return None
    if isinstance(exc, MalformedInputs | BadParameters):
        return FailureClaim(FailureClass.BAD_INPUTS)
    return None


@dataclass(frozen=True, slots=True)
class FailureReport:
    """The provider's signed account of a failed run, sealed to the job creator."""

    claim: FailureClaim
    run_ms: int  # wall time from start to the failure
    memory_limit_bytes: int
    run_time_limit_s: int
    disk_limit_bytes: int
    logs: bytes
    signature: bytes = b""  # EIP-191 by the provider over `body_hash()`

    def body(self) -> dict[str, object]:
        return {
            "claim": self.claim.encode(),
            "run_ms": self.run_ms,
            "memory_limit_bytes": self.memory_limit_bytes,
            "run_time_limit_s": self.run_time_limit_s,
            "disk_limit_bytes": self.disk_limit_bytes,
            "logs_sha256": hashlib.sha256(self.logs).digest(),
        }

    def body_hash(self) -> bytes:
        return hashlib.sha256(wire.encode(self.body())).digest()

    def signed(self, account: LocalAccount) -> FailureReport:
        message = encode_defunct(primitive=self.body_hash())
        signature = bytes(account.sign_message(message).signature)
        return FailureReport(self.claim, self.run_ms, self.memory_limit_bytes,
                             self.run_time_limit_s, self.disk_limit_bytes, self.logs, signature)

    def signer(self) -> str:
        try:
            return str(Account.recover_message(encode_defunct(primitive=self.body_hash()),
                                               signature=self.signature))
        except Exception as exc:  # eth_account raises several unrelated types for bad bytes
            raise BadFailureReport(f"failure report signature does not recover: {exc}") from exc

    def encode(self) -> bytes:
        return REPORT_MAGIC + wire.encode({**self.body(), "logs": self.logs,
                                           "signature": self.signature})

    @classmethod
    def decode(cls, data: bytes) -> FailureReport:
        """Raises BadFailureReport for anything but a well-formed report."""
        if not data.startswith(REPORT_MAGIC):
            raise BadFailureReport("not a failure report")
        try:
            # Anything but a map with the right fields fails below with TypeError or KeyError.
            raw: Any = wire.decode(data[len(REPORT_MAGIC):])
            claim_bytes = raw["claim"]
            if not (isinstance(claim_bytes, bytes) and claim_bytes.startswith(CLAIM_MAGIC)):
                raise BadFailureReport("the report's claim is not a failure claim")
            claim_raw: Any = wire.decode(claim_bytes[len(CLAIM_MAGIC):])
            claim = FailureClaim(FailureClass(claim_raw["failure"]), claim_raw["exit_code"])
            report = cls(claim, raw["run_ms"], raw["memory_limit_bytes"],
                         raw["run_time_limit_s"], raw["disk_limit_bytes"], raw["logs"],
                         raw["signature"])
            expected = {*report.body(), "logs", "signature"}
            if set(raw) != expected or claim.encode() != claim_bytes:
                raise BadFailureReport("failure report fields are not the expected ones")
            if raw["logs_sha256"] != hashlib.sha256(report.logs).digest():
                raise BadFailureReport("the report's logs do not match their hash")
        except BadFailureReport:
            raise
        except (wire.WireError, KeyError, TypeError, ValueError) as exc:
            raise BadFailureReport(f"malformed failure report: {exc}") from exc
        if not all(type(v) is int and v >= 0 for v in (
                report.run_ms, report.memory_limit_bytes, report.run_time_limit_s,
                report.disk_limit_bytes)):
            raise BadFailureReport("failure report usage must be non-negative ints")
        if type(report.logs) is not bytes or len(report.logs) > MAX_REPORT_LOG_BYTES:
            raise BadFailureReport(f"failure report logs must be <= {MAX_REPORT_LOG_BYTES} bytes")
        return report


def failure_report(
    claim: FailureClaim, exc: Exception, *, run_ms: int, module: Module, account: LocalAccount
) -> FailureReport:
    """The provider's signed report of a run that failed with `exc` (claimed as `claim`)."""
    logs = getattr(exc, "log_tail", b"") or str(exc).encode()
    resources = module.resources
    return FailureReport(
        claim, run_ms, resources.memory_bytes, module.max_run_time_s, resources.disk_bytes,
        logs[-MAX_REPORT_LOG_BYTES:],
    ).signed(account)


def write_report(path: Path, report: FailureReport) -> None:
    """Write `report` as the new file `path` (0600): the provider's output spool, which the
    result stream seals to the job creator in place of an output tarball."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(report.encode())


def check_delivery(delivered: bytes, result_hash: bytes, provider: str) -> FailureReport | None:
    """Check what a provider delivered against the hash it committed to: None for an output
    tarball that matches, the report for a failure report that matches (claim hash, logs,
    provider's signature).

    Raises:
        BadFailureReport: the delivery does not match the commitment (evidence for mediation).
    """
    if not delivered.startswith(REPORT_MAGIC):
        if hashlib.sha256(delivered).digest() != result_hash:
            raise BadFailureReport("outputs do not match the committed result hash")
        return None
    report = FailureReport.decode(delivered)
    if report.claim.digest() != result_hash:
        raise BadFailureReport("the failure report is not the committed failure claim")
    if report.signer().lower() != provider.lower():
        raise BadFailureReport("the failure report is not signed by the deal's provider")
    return report


def failure_detail(report: FailureReport) -> dict[str, object]:
    """What a deal's record shows of a failure result."""
    detail: dict[str, object] = {"failure": str(report.claim.failure)}
    if report.claim.failure is FailureClass.EXIT:
        detail["failure_exit_code"] = report.claim.exit_code
    return detail


def write_failure(results_dir: Path, key: str, report: FailureReport) -> Path:
    """Keep the job creator's copy of a failure report: `<key>.failure.json` (what failed,
    the usage, the logs' hash) beside `<key>.logs`, both 0600. Returns the JSON's path."""
    results_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    logs = results_dir / f"{key}.logs"
    logs.write_bytes(report.logs)
    logs.chmod(0o600)
    summary = {
        **failure_detail(report),
        "run_ms": report.run_ms,
        "memory_limit_bytes": report.memory_limit_bytes,
        "run_time_limit_s": report.run_time_limit_s,
        "disk_limit_bytes": report.disk_limit_bytes,
        "logs_sha256": hashlib.sha256(report.logs).hexdigest(),
        "logs_path": str(logs),
        "provider_signature": "0x" + report.signature.hex(),
    }
    path = results_dir / f"{key}.failure.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    path.chmod(0o600)
    return path


def keep_failure(
    results_dir: Path, key: str, report: FailureReport, delivered: Path
) -> tuple[Path, dict[str, Any]]:
    """Keep a delivered failure report: `write_failure`'s files, and the signed report itself
    moved from where the output was received to `<key>.failure-report`. Returns the summary's
    path and what the deal's record shows."""
    path = write_failure(results_dir, key, report)
    delivered.replace(results_dir / f"{key}.failure-report")
    return path, failure_detail(report)


def check_delivered_file(
    path: Path, sha256_digest: bytes, result_hash: bytes, provider: str
) -> FailureReport | None:
    """`check_delivery` for a delivery received into a file, hashed as it arrived
    (`sha256_digest`): None when it is the committed output, the report when it is a report of
    the committed failure claim (read only then, and only up to MAX_REPORT_BYTES).

    Raises:
        BadFailureReport: neither (evidence for mediation).
    """
    if sha256_digest == result_hash:
        return None
    with path.open("rb") as delivered:
        head = delivered.read(MAX_REPORT_BYTES + 1)
    if not head.startswith(REPORT_MAGIC) or len(head) > MAX_REPORT_BYTES:
        raise BadFailureReport("outputs do not match the committed result hash")
    report = check_delivery(head, result_hash, provider)
    assert report is not None  # a report never hashes to its own claim's digest
    return report
