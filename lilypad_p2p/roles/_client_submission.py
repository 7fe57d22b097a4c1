"""A job as its owner submits it: what it asks for, and the deadline its module allows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address

from lilypad_p2p import wire
from lilypad_p2p.errors import LilypadError
from lilypad_p2p.exec import Module
from lilypad_p2p.roles._terms import required_deal_time_s

# Unless the submission says otherwise, a job's result is due this long after it is posted
# beyond its module's maximum run time: time to match, open the deal, move inputs and outputs.
DEADLINE_SLACK_S = 240
# What a job's deadline must leave beyond what a provider requires of its deal when it signs
# (roles/_terms.required_deal_time_s): time to be matched.
MATCH_ALLOWANCE_S = 15
DEFAULT_MAX_PRICE_WEI = 10**16
MIB = 1024 * 1024


class SubmissionError(LilypadError):
    """A job cannot be submitted as asked (unknown module, bad parameters, no funds...)."""


@dataclass(frozen=True, slots=True)
class JobSubmission:
    module: str
    params: Mapping[str, Any] = field(default_factory=dict)
    # The params as typed on a command line: each text, read by its parameter's kind.
    params_as_text: bool = False
    files: Mapping[str, bytes] = field(default_factory=dict)
    # Input files on this machine by name in /inputs, streamed from disk (never read whole).
    file_paths: Mapping[str, Path] = field(default_factory=dict)
    max_price_wei: int = DEFAULT_MAX_PRICE_WEI
    target: str | None = None  # a provider address
    # Seconds until the result is due; None: the module's max run time + DEADLINE_SLACK_S.
    deadline_s: int | None = None
    market: str = "cpu"
    # The deal's Job salt; None: random. An on-chain request's id (roles/_bridge.py), which
    # binds the deal to that request for LilypadRequests.deliver.
    salt: bytes | None = None
    # The settlement chain the job pays on; None: the node's default (first) chain.
    chain_id: int | None = None
    # The providers' record this job requires; None: the node's policy (_client_records.py).
    min_completed_deals: int | None = None
    slash_free_blocks: int | None = None

    def __post_init__(self) -> None:
        if self.salt is not None and len(self.salt) != 32:
            raise SubmissionError("a deal salt is 32 bytes")
        if not self.module:
            raise SubmissionError("a job names a module (ID or name)")
        if self.max_price_wei <= 0 or (self.deadline_s is not None and self.deadline_s <= 0):
            raise SubmissionError("max price and deadline must be positive")

    def resolved_params(self, module: Module) -> dict[str, Any]:
        """The job's parameters checked against `module`, defaults filled in.

        Raises:
            BadParameters: an unknown or missing parameter, or a value that does not fit.
        """
        if self.params_as_text:
            return module.params_from_text(self.params)
        return module.resolve_params(self.params)


def job_deadline_s(module: Module, asked_s: int | None) -> int:
    """The deadline (seconds after posting) a job of `module` gets when `asked_s` is asked.

    Raises:
        SubmissionError: `asked_s` is too short for providers to take the job: they refuse
            deals that could cut a run short of the module's maximum run time.
    """
    if asked_s is None:
        return module.max_run_time_s + DEADLINE_SLACK_S
    least_s = required_deal_time_s(module.max_run_time_s) + MATCH_ALLOWANCE_S
    if asked_s < least_s:
        raise SubmissionError(
            f"a deadline of {asked_s} s is too short for module {module.name}, which may run "
            f"{module.max_run_time_s} s: providers refuse deals that could cut a run short; "
            f"give at least {least_s} s (or none: {job_deadline_s(module, None)} s)")
    return asked_s


def provider_address(target: str) -> str:
    """A provider named by address or by peer ID (both come from its one secp256k1 key)."""
    try:
        if target.startswith("0x"):
            return to_checksum_address(target)
        return wire.address_from_peer_id_text(target)
    except ValueError as exc:
        raise SubmissionError(f"target {target!r} is neither an address nor a peer ID") from exc


def job_spec(module: Module) -> wire.ResourceSpec:
    """What a job of `module` asks of a provider's machine (memory and disk in whole MiB)."""
    resources = module.resources
    return wire.ResourceSpec(
        milli_cpu=resources.milli_cpu,
        ram_mb=-(-resources.memory_bytes // MIB),
        disk_mb=-(-resources.disk_bytes // MIB),
        gpu_count=resources.gpu_count,
        gpu_vram_mb=resources.gpu_vram_mb,
    )
