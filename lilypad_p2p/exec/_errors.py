"""The `ExecError` subtree: everything the executor reports on purpose.

A provider role forwards these to the job creator, so every message says what happened and, for
local faults, what the operator can do about it. Errors caused by the job creator's bytes (inputs
that do not decrypt, are malformed, or carry wrong parameters) are also `PeerMisbehaved`.
"""

from __future__ import annotations

from lilypad_p2p.errors import LilypadError, PeerMisbehaved


class ExecError(LilypadError):
    """Root of every error the executor raises on purpose."""


class DockerUnavailable(ExecError):
    """No Docker engine answers."""


class DockerFailed(ExecError):
    """The Docker engine refused or failed an operation it should have performed."""


class ImageMissing(ExecError):
    """A module's image is not present locally and could not be built or pulled."""


class UnknownModule(ExecError):
    """A job names a module this node does not have (or pins a different image for it)."""


class BadDefinition(ExecError, PeerMisbehaved):
    """A module definition is not valid, or does not match the module ID it was given as."""


class UnreadableDefinition(BadDefinition):
    """A module definition's source (a file, a git repository) could not be read at all."""


class ImageRefused(ExecError):
    """A module's image cannot be used here: digest mismatch, too large, unreachable, refused."""


class UnsealFailed(ExecError, PeerMisbehaved):
    """Sealed bytes do not open with this key: tampered, truncated or sealed to another key."""


class InputDecryptionFailed(UnsealFailed):
    """A job's sealed inputs do not open with the provider's key; no container was started."""


class MalformedInputs(ExecError, PeerMisbehaved):
    """Decrypted inputs are not a valid canonical job-inputs document."""


class BadParameters(ExecError, PeerMisbehaved):
    """Job parameters do not match the module's typed parameters."""


class SandboxFailed(ExecError):
    """The job's private filesystem (the bounded `/outputs`) could not be made or removed."""


class OutputRejected(ExecError):
    """The job's outputs exceed the module's disk allowance or contain unsupported file types."""


class OutputOverLimit(OutputRejected):
    """The job filled its bounded `/outputs`: it tried to write more than the module declares."""

    def __init__(self, disk_bytes: int) -> None:
        super().__init__(
            f"output over limit: the job filled its /outputs allowance of {disk_bytes} bytes "
            "(the module's disk_bytes) and its writes were refused; declare more disk in the "
            "module or write less"
        )
        self.disk_bytes = disk_bytes


class JobTimedOut(ExecError):
    """The job ran past its wall-clock timeout and was killed."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"job ran past its {timeout_s:g} s wall-clock timeout and was killed")
        self.timeout_s = timeout_s


class OutOfMemory(ExecError):
    """The job exceeded its memory limit and the kernel killed it."""

    def __init__(self, memory_bytes: int, log_tail: bytes) -> None:
        super().__init__(
            f"job exceeded its memory limit of {memory_bytes} bytes and was killed by the kernel"
        )
        self.memory_bytes = memory_bytes
        self.log_tail = log_tail


class JobFailed(ExecError):
    """The job exited with a non-zero status."""

    def __init__(self, exit_code: int, log_tail: bytes) -> None:
        tail = log_tail.decode("utf-8", "replace").strip()
        super().__init__(f"job exited with status {exit_code}; log tail: {tail[-500:]!r}")
        self.exit_code = exit_code
        self.log_tail = log_tail


def outcome_class(exc: BaseException | None) -> str:
    """A run's outcome as one word from a fixed set (metrics label): `ok` when `exc` is None."""
    if exc is None:
        return "ok"
    for kind, name in _OUTCOME_CLASSES:
        if isinstance(exc, kind):
            return name
    return "cancelled" if not isinstance(exc, Exception) else "other"


# Most specific first: OutputOverLimit is an OutputRejected, InputDecryptionFailed an UnsealFailed.
_OUTCOME_CLASSES: tuple[tuple[type[BaseException], str], ...] = (
    (JobFailed, "exit_status"),
    (OutOfMemory, "out_of_memory"),
    (JobTimedOut, "timeout"),
    (OutputRejected, "output_rejected"),
    (UnsealFailed, "inputs"),
    (MalformedInputs, "inputs"),
    (BadParameters, "inputs"),
    (ImageMissing, "image"),
    (ImageRefused, "image"),
    (UnknownModule, "image"),
    (DockerUnavailable, "docker"),
    (DockerFailed, "docker"),
    (SandboxFailed, "docker"),
)
