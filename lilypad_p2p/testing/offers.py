"""One factory for the offers tests build: a valid resource or job offer, with any field
overridden by keyword (the schema's field names).

The defaults make an open pair at `NOW_MS` that matches: same market, module, chain and
mediator; the job's spec fits the resource's and its price covers it.
"""

from __future__ import annotations

from typing import Any

from eth_utils import to_checksum_address

from lilypad_p2p.wire import JobOffer, ResourceOffer, ResourceSpec

NOW_MS = 1_700_000_000_000
OFFER_LIFETIME_MS = 3_600_000
JOB_LIFETIME_MS = 300_000
JOB_DEADLINE_MS = 600_000  # after the job offer's creation, past its expiry
CHAIN_ID = 31337


def address_of(n: int) -> str:
    """A fixed checksum address: `n` as 20 big-endian bytes."""
    return to_checksum_address(n.to_bytes(20, "big"))


JOB_CREATOR, PROVIDER, MEDIATOR = address_of(1), address_of(2), address_of(10)
RESOURCE_SPEC = ResourceSpec(milli_cpu=2000, ram_mb=4096, disk_mb=10_000)
JOB_SPEC = ResourceSpec(milli_cpu=1000, ram_mb=1024, disk_mb=1000)


def make_resource_offer(*, lifetime_ms: int = OFFER_LIFETIME_MS, **fields: Any) -> ResourceOffer:
    """A resource offer; `expires_at` defaults to `created_at + lifetime_ms`."""
    values: dict[str, Any] = {
        "market": "cpu",
        "provider": PROVIDER,
        "spec": RESOURCE_SPEC,
        "modules": ("hash",),
        "price_per_job_wei": 10**15,
        "collateral_wei": 0,
        "trusted_mediators": (MEDIATOR,),
        "chain_ids": (CHAIN_ID,),
        "created_at": NOW_MS,
        "nonce": 0,
        **fields,
    }
    values.setdefault("expires_at", values["created_at"] + lifetime_ms)
    return ResourceOffer(**values)


def make_job_offer(*, lifetime_ms: int = JOB_LIFETIME_MS, **fields: Any) -> JobOffer:
    """A job offer; `expires_at` defaults to `created_at + lifetime_ms` and `deadline` to
    `created_at + JOB_DEADLINE_MS`."""
    values: dict[str, Any] = {
        "market": "cpu",
        "job_creator": JOB_CREATOR,
        "module": "hash",
        "spec": JOB_SPEC,
        "max_price_wei": 10**16,
        "trusted_mediators": (MEDIATOR,),
        "chain_id": CHAIN_ID,
        "inputs_commitment": bytes(32),
        "created_at": NOW_MS,
        "nonce": 0,
        **fields,
    }
    values.setdefault("expires_at", values["created_at"] + lifetime_ms)
    values.setdefault("deadline", values["created_at"] + JOB_DEADLINE_MS)
    return JobOffer(**values)
