"""Providers' track records read from the settlement contract's events (`market.track_records`)."""

from __future__ import annotations

from collections.abc import Iterable

from eth_utils import to_checksum_address

from lilypad_p2p.chain._backend import Chain
from lilypad_p2p.chain._watcher import ChainEvent, EventWatcher
from lilypad_p2p.market import SettlementEvent, TrackRecord, track_records

# The events a track record is made of: the only ones a record replay asks the chain for.
RECORD_EVENTS = frozenset({"DealOpened", "DealSettled", "DealTimedOut", "DealResolved"})


def settlement_events(events: Iterable[ChainEvent]) -> list[SettlementEvent]:
    """The decoded chain events a track record is made of, in chain order."""
    kept = []
    for event in events:
        deal_id = event.deal_id
        if event.name not in RECORD_EVENTS or deal_id is None:
            continue
        provider = event.args.get("provider")
        status = event.args.get("status")
        outcome = event.args.get("outcome")
        kept.append(SettlementEvent(
            name=event.name,
            deal_id=deal_id,
            block=event.block_number,
            provider=to_checksum_address(provider) if provider is not None else None,
            status=int(status) if status is not None else None,
            outcome=int(outcome) if outcome is not None else None,
        ))
    return kept


def deployment_block(chain: Chain, contract: str) -> int:
    """The block that deployed `contract`: the first with code at its address (a binary search,
    about log2(head) calls), so a replay of its events need not scan the chain from genesis.
    Every node finds the same block, so records replayed from it agree across solvers."""
    address = to_checksum_address(contract)

    def has_code(block: int) -> bool:
        return bool(chain.rpc(lambda: chain.w3.eth.get_code(address, block_identifier=block)))

    low, high = 0, chain.block_number()
    if not has_code(high):
        return high  # not deployed (yet): nothing before the head to replay
    while low < high:
        middle = (low + high) // 2
        if has_code(middle):
            high = middle
        else:
            low = middle + 1
    return low


def read_track_records(
    chain: Chain, contract: str, *, from_block: int | None = None
) -> tuple[dict[str, TrackRecord], int]:
    """Every provider's record on this chain from `from_block` on (by default the contract's
    deployment), and the head block read to.

    Blocking (one eth_getLogs per MAX_BLOCK_RANGE blocks); run it in a worker thread from trio.
    """
    first = deployment_block(chain, contract) if from_block is None else from_block
    watcher = EventWatcher(chain, contract, from_block=first, events=RECORD_EVENTS)
    events = watcher.poll()
    return track_records(settlement_events(events)), watcher.cursor - 1
