"""The bridge's scan plan: which blocks it reads and which requests it may act on (reorgs)."""

import pytest

from lilypad_p2p.chain import RequestedJob, TrustPolicy
from lilypad_p2p.roles._request_polling import (
    REORG_DEPTH_BLOCKS,
    ScanPlan,
    next_cursor,
    plan_scan,
)


def _requested(block: int) -> RequestedJob:
    return RequestedJob(request_id=block.to_bytes(32, "big"), requester="0x" + "11" * 20,
                        module="hash", inputs=b"{}", max_price=1, deadline=10**10,
                        callback_gas_limit=0, policy=TrustPolicy(("0x" + "22" * 20,), 1),
                        block_number=block)


def test_only_requests_with_enough_blocks_on_top_are_confirmed() -> None:
    plan = plan_scan(cursor=100, latest=120, confirmations=3)
    assert (plan.from_block, plan.to_block) == (100 - REORG_DEPTH_BLOCKS, 120)
    assert plan.confirmed(_requested(117))
    assert not plan.confirmed(_requested(118))


def test_zero_confirmations_acts_on_the_head() -> None:
    assert plan_scan(cursor=5, latest=5, confirmations=0).confirmed(_requested(5))


def test_young_chain_confirms_nothing_and_reads_from_genesis() -> None:
    plan = plan_scan(cursor=0, latest=2, confirmations=12)
    assert plan.from_block == 0
    assert not plan.confirmed(_requested(0))
    assert next_cursor([], plan) == 0


def test_cursor_stays_at_the_oldest_unfinished_request() -> None:
    plan = plan_scan(cursor=50, latest=80, confirmations=2)
    assert next_cursor([61, 55, 70], plan) == 55
    # Nothing unfinished: just above the confirmed head, so unconfirmed requests are re-read.
    assert next_cursor([], plan) == 79


def test_a_chain_that_shrank_below_the_cursor_reads_nothing_new() -> None:
    # A reorg (or anvil's evm_revert) left the head far below where the bridge had read.
    plan = plan_scan(cursor=200, latest=150, confirmations=0)
    assert plan.from_block == 151 and plan.to_block == 150
    assert next_cursor([], plan) == 151


@pytest.mark.parametrize(("cursor", "latest", "confirmations"), [(-1, 5, 0), (0, -1, 0),
                                                                   (0, 5, -1)])
def test_negative_inputs_are_refused(cursor: int, latest: int, confirmations: int) -> None:
    with pytest.raises(ValueError):
        plan_scan(cursor, latest, confirmations)


def test_inconsistent_plan_cannot_exist() -> None:
    with pytest.raises(ValueError):
        ScanPlan(from_block=10, to_block=5, confirmed_head=5)
    with pytest.raises(ValueError):
        ScanPlan(from_block=0, to_block=5, confirmed_head=6)
