"""A job as its owner submits it: what it asks for, the deadline its module allows, and the
checks against the offers this node holds that refuse a job no provider could take."""

from __future__ import annotations

import secrets
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address

from lilypad_p2p import wire
from lilypad_p2p.errors import LilypadError
from lilypad_p2p.exec import Module
from lilypad_p2p.market import Event, Phase, entry_accepts, is_open, spec_shortfall
from lilypad_p2p.roles._client_matching import job_offer
from lilypad_p2p.roles._terms import MAX_ACCEPTANCE_WINDOW_S, required_deal_time_s
from lilypad_p2p.store import ClientDeal

# Unless the submission says otherwise, a job's result is due this long after it is posted
# beyond its module's maximum run time: time to match, open the deal, move inputs and outputs.
DEADLINE_SLACK_S = 240
# What a job's deadline must leave beyond what a provider requires of its deal when it signs
# (roles/_terms.required_deal_time_s): time to be matched.
MATCH_ALLOWANCE_S = 15
DEFAULT_MAX_PRICE_WEI = 10**16
MIB = 1024 * 1024
# The latest a job's result may be due. A provider that goes silent keeps the payment and its
# collateral locked until then, so the bound is the longest on-chain window a provider agrees
# to (the acceptance window, roles/_terms.py); the longest module run (24 h) fits well inside.
MAX_DEADLINE_S = MAX_ACCEPTANCE_WINDOW_S
ZERO_ADDRESS = "0x" + "00" * 20
# A job's payment and mediation fee leave the free deposit only when its deal opens on chain.
UNOPENED_PHASES = frozenset({Phase.OFFERED, Phase.MATCHED, Phase.AGREED})


# Why a job posted by a version whose job offers did not commit to their inputs ends before its
# deal opens: no provider or mediator of this version runs it.
UNBOUND_INPUTS = ("posted by an earlier version, whose job offers did not bind their inputs to "
                  "the deal; submit the job again")


def unbound_job_ends(stored: ClientDeal) -> tuple[Event, ...]:
    """The events that end a job posted before inputs were bound to deals, if its deal has not
    opened (none for any other job)."""
    if stored.detail.inputs_nonce is not None or stored.record.phase not in UNOPENED_PHASES:
        return ()
    return (Event.REFUSED, Event.CANCEL) if stored.record.phase is Phase.MATCHED else (
        Event.CANCEL,)


class SubmissionError(LilypadError):
    """A job cannot be submitted as asked (unknown module, bad parameters, no funds...)."""


class SubmissionDeferred(SubmissionError):
    """A job cannot be submitted yet: what it lacks (free deposit) may come."""


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
        if self.max_price_wei <= 0:
            raise SubmissionError(f"max price {self.max_price_wei} wei: give more than 0 wei "
                                  "(--max-price, e.g. 0.01eth)")
        if self.deadline_s is not None and self.deadline_s <= 0:
            raise SubmissionError(f"deadline {self.deadline_s} s: give a positive number of "
                                  "seconds (--deadline), or none for the module's default")
        if self.deadline_s is not None and self.deadline_s > MAX_DEADLINE_S:
            raise SubmissionError(
                f"deadline {self.deadline_s} s is over the most a job may ask, "
                f"{MAX_DEADLINE_S} s ({MAX_DEADLINE_S // 86400} days): a provider that goes "
                "silent would keep your payment locked that long; give a shorter --deadline")

    def resolved_params(self, module: Module) -> dict[str, Any]:
        """The job's parameters checked against `module`, defaults filled in.

        Raises:
            BadParameters: an unknown or missing parameter, or a value that does not fit.
        """
        if self.params_as_text:
            return module.params_from_text(self.params)
        return module.resolve_params(self.params)


def promised_wei(deals: Iterable[ClientDeal], chain_id: int, fee_wei: int) -> int:
    """What this client's jobs on `chain_id` whose deals are not open yet will lock: an agreed
    deal's payment and fee; a job not agreed yet, its max price and `fee_wei`."""
    total = 0
    for stored in deals:
        if stored.chain_id != chain_id or stored.record.phase not in UNOPENED_PHASES:
            continue
        deal = stored.detail.deal
        if deal is not None:
            total += deal.payment + deal.mediation_fee
        else:
            total += job_offer(stored).max_price_wei + fee_wei
    return total


def check_funds(free_wei: int, job: JobSubmission, chain_id: int, *, fee_wei: int,
                promised_wei: int = 0) -> None:
    """Refuse, for now, a job whose max price and mediation fee are above this node's free
    deposit less `promised_wei`, what its jobs not opened yet will lock (each would otherwise
    wait in vain for a provider to open its deal).

    Raises:
        SubmissionDeferred: naming the amounts and how to deposit.
    """
    if free_wei - promised_wei >= job.max_price_wei + fee_wei:
        return
    held = (f", less {promised_wei} wei that jobs not opened yet will lock,"
            if promised_wei else "")
    raise SubmissionDeferred(
        f"free deposit {free_wei} wei on chain {chain_id}{held} is below the job's max price "
        f"{job.max_price_wei} wei plus the mediation fee {fee_wei} wei: run "
        f"`lilypad-p2p deposit <amount>` first" + (", or wait for those jobs to open"
                                                   if promised_wei else ""))


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


def new_job_offer(
    job: JobSubmission, module_id: str, module: Module, *, creator: str, chain_id: int,
    mediators: tuple[str, ...], check_rate_ppm: int, asks: Mapping[str, int], now_ms: int,
    deadline_s: int, lifetime_ms: int, inputs_commitment: bytes,
) -> wire.JobOffer:
    """The job offer `creator` posts for `job` at `now_ms`, open for `lifetime_ms`; `asks`
    are its record requirements (`ClientRecords.offer_fields`)."""
    return wire.JobOffer(
        market=job.market,
        job_creator=creator,
        module=module_id,
        image=module.image,
        spec=job_spec(module),
        max_price_wei=job.max_price_wei,
        trusted_mediators=mediators,
        deadline=now_ms + deadline_s * 1000,
        target_provider=provider_address(job.target) if job.target else None,
        chain_id=chain_id,
        check_rate_ppm=check_rate_ppm,
        records_block=asks.get("records_block", 0),
        min_completed_deals=asks.get("min_completed_deals", 0),
        slash_free_blocks=asks.get("slash_free_blocks", 0),
        inputs_commitment=inputs_commitment,
        created_at=now_ms,
        expires_at=now_ms + lifetime_ms,
        nonce=secrets.randbits(63),
    )


def provider_address(target: str) -> str:
    """A provider named by address or by peer ID (both come from its one secp256k1 key)."""
    try:
        if target.startswith("0x"):
            return to_checksum_address(target)
        return wire.address_from_peer_id_text(target)
    except ValueError as exc:
        raise SubmissionError(f"target {target!r} is neither an address nor a peer ID: give a "
                              "provider's (`lilypad-p2p offers` lists them)") from exc


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


def check_input_files_named(module: Module, params: Mapping[str, Any],
                            names: Collection[str]) -> None:
    """Refuse a job whose module reads an input file that is not among `names`: it could only
    fail on the provider, which is paid for the run all the same.

    Raises:
        SubmissionError: naming the file and how to give it.
    """
    for name in sorted(name for name, param in module.params.items() if param.input_file):
        wanted = params.get(name)
        if isinstance(wanted, str) and wanted not in names:
            given = f" (given: {', '.join(sorted(names))})" if names else ""
            raise SubmissionError(
                f"module {module.name} reads /inputs/{wanted} (parameter {name!r}), but no "
                f"input file is named {wanted!r}{given}: add --file PATH/{wanted}, or "
                f"-i {name}=NAME for a --file named NAME")


def check_market(market: str, markets: Collection[str] | None) -> None:
    """Refuse a market this node is not in (`markets` None: any): no offer of it reaches the
    node, so the job could only wait out the match timeout.

    Raises:
        SubmissionError: naming the node's markets.
    """
    if markets is not None and market not in markets:
        raise SubmissionError(
            f"this node is not in market {market!r}; its markets: {', '.join(markets)}: post "
            f"in one of them (--market), or add {market!r} to `markets` in config.toml and "
            "restart the node")


def _takes(offer: wire.ResourceOffer, module_id: str, module: Module, need: wire.ResourceSpec,
           chain_id: int) -> bool:
    """Whether `offer` could take a job of `module` (needing `need`) on `chain_id`, its price
    aside (the matching constraints that do not depend on the job's other terms)."""
    return (chain_id in offer.chain_ids
            and any(entry_accepts(entry, module_id, module.image, need)
                    for entry in offer.modules)
            and spec_shortfall(need, offer.spec) is None)


def check_against_offers(
    job: JobSubmission, module_id: str, module: Module, chain_id: int,
    offers: Sequence[wire.ResourceOffer], *, own_address: str, now_ms: int,
) -> list[str]:
    """Refuse a job that none of the resource offers this node holds for its market could
    take (a `target` that owns none, a max price below all), before it is posted; the
    warnings to show when the node holds too few offers to tell.

    Raises:
        SubmissionError: naming what no offer allows, and how to list the offers.
    """
    market = job.market
    listing = f"`lilypad-p2p offers --market {market}` lists the providers' offers"
    live = [offer for offer in offers if is_open(offer, now_ms)]
    need = job_spec(module)
    takers = [offer for offer in live if _takes(offer, module_id, module, need, chain_id)]
    warnings = []
    if job.target is not None:
        target = provider_address(job.target)
        if target == to_checksum_address(ZERO_ADDRESS):
            raise SubmissionError(f"--target {job.target} is the zero address, no provider; "
                                  f"{listing}")
        if target == to_checksum_address(own_address):
            raise SubmissionError(f"--target {job.target} is this node's own address: a job "
                                  f"runs on a provider's node; {listing}")
        if not live:
            # Just started: the offers come with the first gossip and sync.
            warnings.append(f"this node holds no resource offers in market {market!r} yet, "
                            f"so --target {job.target} is not checked; the job waits for its "
                            "offer until the match timeout")
            return warnings
        if not any(offer.provider.lower() == target.lower() for offer in live):
            raise SubmissionError(
                f"--target {job.target} has no resource offer in market {market!r} that this "
                f"node holds (a solver, a client, a mistyped address, or a provider that has "
                f"withdrawn its offers for now?); {listing}")
        takers = [offer for offer in takers if offer.provider.lower() == target.lower()]
        if not takers:
            raise SubmissionError(
                f"--target {job.target} offers nothing in market {market!r} that takes module "
                f"{module.name} on chain {chain_id}; {listing}")
    elif not takers:
        what = (f"resource offers in market {market!r}" if not live else
                f"resource offer in market {market!r} that takes module {module.name} on "
                f"chain {chain_id}")
        warnings.append(f"this node holds no {what} yet; the job waits for one until the "
                        "match timeout")
        return warnings
    cheapest = min(offer.price_per_job_wei for offer in takers)
    if cheapest > job.max_price_wei:
        # Offers change, but not within a match timeout as a rule: waiting it out to be told
        # "no provider took the job" serves nobody; the offers' price is right here.
        raise SubmissionError(
            f"--max-price {job.max_price_wei} wei is below every offer for module {module.name} "
            f"in market {market!r} that this node holds: the cheapest asks {cheapest} wei; "
            f"raise --max-price to at least that ({listing})")
    return warnings
