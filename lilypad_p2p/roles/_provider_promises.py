"""What a provider's open deals already hold: the capacity they take, and the collateral it has
promised to deals that are not open on chain yet (read from its deal store)."""

from __future__ import annotations

from lilypad_p2p import wire
from lilypad_p2p.market import Phase
from lilypad_p2p.roles._terms import spec_fits
from lilypad_p2p.store import DealStore

# Phases in which a deal holds part of the provider's capacity.
BUSY_PHASES = (Phase.AGREED, Phase.OPEN, Phase.RUNNING)


def has_room(store: DealStore, need: wire.ResourceSpec, capacity: wire.ResourceSpec) -> bool:
    """Whether `need` fits in `capacity` beside the deals that hold part of it."""
    free = [capacity.milli_cpu, capacity.ram_mb, capacity.disk_mb, capacity.gpu_count]
    for stored in store.provider_deals(open_only=True):
        if stored.record.phase in BUSY_PHASES:
            spec = stored.detail.spec
            for i, used in enumerate((spec.milli_cpu, spec.ram_mb, spec.disk_mb, spec.gpu_count)):
                free[i] -= used
    return spec_fits(need, free)


def promised_collateral(store: DealStore, chain_id: int) -> int:
    """The collateral of the provider's agreed deals on `chain_id` that are not open yet: its
    free balance still holds it until each one's `openDeal` locks it."""
    return sum(stored.detail.deal.collateral
               for stored in store.provider_deals(open_only=True)
               if stored.record.phase is Phase.AGREED and stored.chain_id == chain_id)
