"""Providers' track records replayed from a real contract's events, and `lilypad-p2p providers`."""

from __future__ import annotations

import json

import pytest
from chain_world import RESULT_WINDOW_S, World
from typer.testing import CliRunner

from lilypad_p2p.chain import Backend, read_track_records
from lilypad_p2p.chain._records import deployment_block
from lilypad_p2p.cli import app
from lilypad_p2p.testing import advance_chain_time

pytestmark = pytest.mark.chain

RESULT = b"\x33" * 32


def test_records_count_what_the_contract_did(world: World, tmp_path) -> None:
    settled, late, running = world.deal(), world.deal(), world.deal()
    for deal in (settled, late, running):
        world.open(deal)
    acceptance = world.job_creator.sign(world.job_creator.acceptance(settled, RESULT))
    world.provider.settle(settled, RESULT, acceptance)
    advance_chain_time(world.chain, RESULT_WINDOW_S + 1)
    world.job_creator.claim_timeout(late)  # no result by the deadline: the provider is slashed
    slashed_at = world.chain.block_number()

    records, head = read_track_records(world.chain, world.address, from_block=world.deployed_at)
    assert head >= slashed_at
    assert list(records) == [world.provider.account.address]
    record = records[world.provider.account.address]
    assert (record.opened, record.settled, record.missed_deadline) == (3, 1, 1)
    assert (record.completed, record.slashes, record.in_progress) == (1, 1, 1)
    assert record.last_slash_block == slashed_at

    # A replay that starts after the deals were opened attributes nothing.
    later, _ = read_track_records(world.chain, world.address, from_block=slashed_at)
    assert later == {}

    if world.chain.backend is not Backend.JSON_RPC:
        return  # the CLI reaches a chain over JSON-RPC only
    url = world.chain.w3.provider.endpoint_uri  # type: ignore[attr-defined]
    result = CliRunner().invoke(app, [
        "providers", "--home", str(tmp_path / "anyone"), "--rpc", url,
        "--contract", world.address, "--from-block", str(world.deployed_at), "--json",
    ], env={"LILYPAD_RPC_URL": None, "LILYPAD_CONTRACT": None})
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)["providers"]
    assert shown == [{
        "provider": world.provider.account.address, "opened": 3, "completed": 1, "settled": 1,
        "paid_unanswered": 0, "ruled_correct": 0, "missed_deadline": 1, "ruled_wrong": 0,
        "non_deterministic": 0, "mediation_lapsed": 0, "in_progress": 1,
        "last_slash_block": slashed_at,
    }]


async def test_the_record_feed_follows_the_chain_and_answers_per_block(world: World) -> None:
    """What solvers and clients match by: records as of a block, from a feed that follows
    the contract, equal to a one-off replay; None past the blocks it has read."""
    import trio

    from lilypad_p2p.chain import RecordFeed

    settled, late = world.deal(), world.deal()
    world.open(settled)
    world.open(late)
    opened_at = world.chain.block_number()
    acceptance = world.job_creator.sign(world.job_creator.acceptance(settled, RESULT))
    world.provider.settle(settled, RESULT, acceptance)
    advance_chain_time(world.chain, RESULT_WINDOW_S + 1)
    world.job_creator.claim_timeout(late)
    slashed_at = world.chain.block_number()

    # The replay starts where the contract was deployed, not at genesis.
    first = deployment_block(world.chain, world.address)
    code_at = world.chain.w3.eth.get_code
    assert code_at(world.address, block_identifier=first)
    assert first == 0 or not code_at(world.address, block_identifier=first - 1)

    feed = RecordFeed()
    async with trio.open_nursery() as nursery:
        await nursery.start(feed.follow, world.chain, world.address)
        nursery.cancel_scope.cancel()
    head = feed.head(world.chain.chain_id)
    assert head is not None and head >= slashed_at
    provider = world.provider.account.address
    now, _ = read_track_records(world.chain, world.address)
    assert feed.records_at(world.chain.chain_id, head) == now
    before = feed.records_at(world.chain.chain_id, opened_at)
    assert before is not None
    assert (before[provider].opened, before[provider].completed, before[provider].slashes) == (
        2, 0, 0)
    assert feed.records_at(world.chain.chain_id, slashed_at)[provider].slashes == 1
    assert feed.records_at(world.chain.chain_id, head + 1) is None
    assert feed.records_at(world.chain.chain_id + 1, 1) is None


async def test_asking_for_records_past_the_replay_polls_the_chain_at_once(world: World) -> None:
    """A job names its client's latest block; the solver's feed has not replayed it. Asking
    wakes the feed, long before its slow poll would have come round."""
    from functools import partial

    import trio

    from lilypad_p2p.chain import RecordFeed

    feed = RecordFeed()
    chain_id = world.chain.chain_id
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(feed.follow, world.chain, world.address, poll_s=600))
        world.open(world.deal())
        named = world.chain.block_number()
        assert feed.records_at(chain_id, named) is None
        with trio.fail_after(10):
            while (records := feed.records_at(chain_id, named)) is None:
                await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
    assert records[world.provider.account.address].opened == 1
