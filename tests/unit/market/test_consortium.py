"""Consortium choice and spot-check economics (market/_consortium.py)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lilypad_p2p.chain import default_threshold
from lilypad_p2p.market import (
    PPM,
    collateral_covers_check_rate,
    consortium_seed,
    default_quorum,
    is_spot_checked,
    mediator_rank,
    required_collateral,
    select_consortium,
    threshold_is_safe,
)

ADDRESSES = [
    "0x" + hashlib.sha256(f"mediator {i}".encode()).hexdigest()[:40] for i in range(12)
]
JOB_CID = "bafkreiaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
RESOURCE_CID = "bafkreibbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"


def test_selection_is_the_lowest_ranks_in_ascending_address_order() -> None:
    seed = consortium_seed(JOB_CID, RESOURCE_CID)
    chosen = select_consortium(ADDRESSES, seed, 5)
    by_rank = sorted(ADDRESSES, key=lambda m: mediator_rank(seed, m))[:5]
    assert set(chosen) == set(by_rank)
    assert list(chosen) == sorted(chosen, key=lambda m: int(m, 16))


@given(st.permutations(ADDRESSES), st.integers(1, 12))
def test_selection_ignores_the_order_candidates_arrive_in(order: list[str], size: int) -> None:
    seed = consortium_seed(JOB_CID, RESOURCE_CID)
    assert select_consortium(order, seed, size) == select_consortium(ADDRESSES, seed, size)


def test_selection_depends_on_both_offers() -> None:
    picks = {
        select_consortium(ADDRESSES, consortium_seed(job, resource), 3)
        for job, resource in [(JOB_CID, RESOURCE_CID), (JOB_CID + "x", RESOURCE_CID),
                              (JOB_CID, RESOURCE_CID + "x"), (JOB_CID + "y", RESOURCE_CID)]
    }
    assert len(picks) > 1


def test_selection_takes_all_candidates_when_fewer_than_asked() -> None:
    seed = consortium_seed(JOB_CID, RESOURCE_CID)
    assert select_consortium(ADDRESSES[:2], seed, 5) == tuple(
        sorted(ADDRESSES[:2], key=lambda m: int(m, 16)))
    with pytest.raises(ValueError):
        select_consortium(ADDRESSES, seed, 0)


@pytest.mark.parametrize("size", range(1, 33))
def test_default_quorum_matches_the_chain_default_and_is_safe(size: int) -> None:
    assert default_quorum(size) == default_threshold(size)
    assert threshold_is_safe(default_quorum(size), size)


def test_threshold_safety_needs_a_strict_majority() -> None:
    assert not threshold_is_safe(2, 4)
    assert threshold_is_safe(3, 4)
    assert not threshold_is_safe(6, 5)


def test_required_collateral_is_price_over_check_rate() -> None:
    assert required_collateral(10**15, 0) == 0
    assert required_collateral(10**15, PPM) == 10**15
    assert required_collateral(10**15, PPM // 10) == 10 * 10**15
    assert required_collateral(10, 300_000) == 34  # rounded up: 33.3 would fall short
    assert collateral_covers_check_rate(10 * 10**15, 10**15, PPM // 10)
    assert not collateral_covers_check_rate(10 * 10**15 - 1, 10**15, PPM // 10)


@given(st.integers(0, PPM), st.integers(0, 10**30))
def test_required_collateral_makes_cheating_unprofitable(rate: int, price: int) -> None:
    if rate == 0:
        return
    collateral = required_collateral(price, rate)
    # Expected jobs cheated before a catch = 1/p; gain price each, then the collateral is lost.
    assert collateral * rate >= price * PPM


def test_spot_check_draw() -> None:
    assert is_spot_checked(PPM, PPM - 1)
    assert not is_spot_checked(0, 0)
    assert is_spot_checked(250_000, 249_999) and not is_spot_checked(250_000, 250_000)
