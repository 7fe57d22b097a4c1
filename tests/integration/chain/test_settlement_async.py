"""The trio face of the client and the event watcher, on both backends."""

from __future__ import annotations

import logging
from functools import partial
from urllib.parse import urlparse

import pytest
import trio
from chain_world import DEPOSIT, PAYMENT, World

from lilypad_p2p.chain import (
    SETTLEMENT,
    AlreadySettled,
    AsyncSettlementClient,
    ChainEvent,
    ContractRevert,
    DealStatus,
    EventWatcher,
    RpcUnavailable,
    open_rpc_chain,
)
from lilypad_p2p.chain import _watcher as watcher_module
from lilypad_p2p.chain._abi import contract_abi
from lilypad_p2p.testing import advance_chain_time, revert_chain, snapshot_chain
from lilypad_p2p.testing._proxy import Forwarder

pytestmark = pytest.mark.chain

RESULT = b"\x11" * 32
# Bound on how long the watcher may take to report what was mined.
WATCH_TIMEOUT_S = 30.0


async def test_concurrent_transactions_from_one_account(world: World) -> None:
    client = AsyncSettlementClient(world.job_creator)
    amounts = [10**15 * (i + 1) for i in range(12)]
    async with trio.open_nursery() as nursery:
        for amount in amounts:
            nursery.start_soon(client.deposit, amount)
    assert (await client.balance()).free == DEPOSIT + sum(amounts)
    assert await client.free_balance() == DEPOSIT + sum(amounts)
    assert await client.free_balance(world.provider.account.address) == DEPOSIT


async def test_watcher_reports_the_lifecycle_in_order(world: World) -> None:
    watcher = EventWatcher(world.chain, world.address, from_block=world.chain.block_number() + 1)
    jc = AsyncSettlementClient(world.job_creator)
    provider = AsyncSettlementClient(world.provider)
    send, receive = trio.open_memory_channel[ChainEvent](0)
    async with trio.open_nursery() as nursery:
        await nursery.start(watcher.run, send)
        deal = world.deal()
        deal_id = await jc.open_deal(deal, jc.sync.sign(deal), provider.sync.sign(deal))
        signature = jc.sync.sign(jc.sync.acceptance(deal, RESULT))
        await provider.settle(deal, RESULT, signature)
        with pytest.raises(AlreadySettled):
            await jc.settle(deal, RESULT, signature)
        seen = []
        with trio.fail_after(WATCH_TIMEOUT_S):
            async for event in receive:
                seen.append((event.name, event.deal_id))
                if event.name == "DealSettled":
                    break
        nursery.cancel_scope.cancel()
    assert seen == [("DealOpened", deal_id), ("DealSettled", deal_id)]
    assert (await provider.balance()).free == DEPOSIT + PAYMENT


def test_watcher_with_confirmations_holds_back_recent_blocks(world: World) -> None:
    start = world.chain.block_number() + 1
    world.open(world.deal())
    deep = EventWatcher(world.chain, world.address, from_block=start, confirmations=3)
    assert deep.poll() == []
    for _ in range(3):
        world.stranger.deposit(1)
    names = [event.name for event in deep.poll()]
    assert names[0] == "DealOpened"
    shallow = EventWatcher(world.chain, world.address, from_block=start)
    assert [e.name for e in shallow.poll()] == ["DealOpened", "Deposited", "Deposited", "Deposited"]
    assert shallow.poll() == []  # the cursor moved on: nothing twice



def test_a_watcher_for_named_events_asks_the_chain_for_those_only(world: World, monkeypatch
                                                                  ) -> None:
    start = world.chain.block_number() + 1
    world.open(world.deal())
    world.stranger.deposit(1)
    asked: list[object] = []
    get_logs = world.chain.w3.eth.get_logs

    def counted(query):
        logs = get_logs(query)
        asked.append(len(logs))
        return logs

    monkeypatch.setattr(world.chain.w3.eth, "get_logs", counted)
    named = EventWatcher(world.chain, world.address, from_block=start,
                         events={"DealOpened", "DealSettled"})
    assert [e.name for e in named.poll()] == ["DealOpened"]
    assert asked == [1]  # the deposit's log never came back from the chain
    every = EventWatcher(world.chain, world.address, from_block=start)
    assert [e.name for e in every.poll()] == ["DealOpened", "Deposited"]


def test_a_call_answers_and_refuses_as_web3s_eth_call_does(world: World) -> None:
    """`Chain.call` sends eth_call as the raw request: the same answer as web3's `eth.call`,
    and the same typed error when the contract refuses."""
    calls = contract_abi(SETTLEMENT)
    view = {"to": world.address, "data": calls.encode("accounts", [world.provider.account.address])}
    assert world.chain.call(view) == bytes(world.chain.w3.eth.call(view))
    deal = world.deal()
    wrong = {"from": world.stranger.account.address, "to": world.address,
             "data": calls.encode("openDeal", [deal.terms_abi(), list(deal.mediators),
                                               b"\x11" * 65, b"\x22" * 65])}
    with pytest.raises(ContractRevert) as ours:
        world.chain.call(wrong)
    with pytest.raises(Exception) as theirs:
        world.chain.w3.eth.call(wrong)
    expected = world.chain._as_revert(theirs.value)
    assert (type(ours.value), ours.value.error, ours.value.error_args) == (
        type(expected), expected.error, expected.error_args)

def test_unreachable_rpc_is_a_typed_error() -> None:
    with pytest.raises(RpcUnavailable):
        open_rpc_chain("http://127.0.0.1:9")  # discard port: nothing listens


# A forwarder the test cuts stands between the watcher and anvil's port.
@pytest.mark.parametrize("chain", ["anvil"], indirect=True)
async def test_a_watcher_outlives_an_rpc_outage_and_delivers_what_came_meanwhile(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lilypad_p2p")
    anvil_port = urlparse(str(world.chain.w3.provider.endpoint_uri)).port
    assert anvil_port is not None
    with Forwarder.tcp(anvil_port) as rpc:
        through = open_rpc_chain(f"http://127.0.0.1:{rpc.port}")
        watcher = EventWatcher(through, world.address, from_block=world.chain.block_number() + 1)
        send, receive = trio.open_memory_channel[ChainEvent](8)
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(watcher.run, send, poll_interval=0.05))
            rpc.stop()
            await trio.to_thread.run_sync(world.stranger.deposit, 1)
            with trio.fail_after(WATCH_TIMEOUT_S):
                while "chain.watch_failed" not in caplog.messages:
                    await trio.sleep(0.05)
            rpc.start()
            await trio.to_thread.run_sync(world.stranger.deposit, 2)
            with trio.fail_after(WATCH_TIMEOUT_S):
                amounts = [(await receive.receive()).args["amount"] for _ in range(2)]
            nursery.cancel_scope.cancel()
    assert amounts == [1, 2]
    assert caplog.messages.count("chain.watch_failed") == 1  # once an outage, not each poll
    assert "chain.watch_resumed" in caplog.messages


def test_a_poll_cut_short_delivers_what_it_scanned_and_the_next_goes_on_from_there(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watcher_module, "MAX_BLOCK_RANGE", 1)  # a range a block
    watcher = EventWatcher(world.chain, world.address, from_block=world.chain.block_number() + 1)
    for amount in (1, 2, 3):
        world.stranger.deposit(amount)  # a block each
    real_get_logs = world.chain.w3.eth.get_logs
    asked = []

    def second_fails(query):
        asked.append(query["fromBlock"])
        if len(asked) == 2:
            raise RpcUnavailable("the RPC went away")
        return real_get_logs(query)

    monkeypatch.setattr(world.chain.w3.eth, "get_logs", second_fails)
    assert [e.args["amount"] for e in watcher.poll()] == [1]
    assert [e.args["amount"] for e in watcher.poll()] == [2, 3]
    assert asked[1] == asked[2]  # the failed block was asked again, once


def test_advancing_a_dev_chain_mines_exactly_that_many_seconds_later(world: World) -> None:
    """A test that waits out a contract's window by advancing the chain must land past it:
    eth-tester's time travel, left alone, lands a second short."""
    before = world.chain.now()
    assert advance_chain_time(world.chain, 601) == before + 601 == world.chain.now()


def test_watcher_rescans_after_a_reorg(world: World) -> None:
    start = world.chain.block_number() + 1
    watcher = EventWatcher(world.chain, world.address, from_block=start)
    world.stranger.deposit(1)
    before_fork = snapshot_chain(world.chain)
    lost = world.deal()
    world.open(lost)
    assert [e.name for e in watcher.poll()] == ["Deposited", "DealOpened"]

    revert_chain(world.chain, before_fork)  # the block with `lost` is gone
    kept = world.deal()
    kept_id = world.open(kept)
    world.stranger.deposit(2)
    after = watcher.poll()
    assert [(e.name, e.deal_id) for e in after] == [("DealOpened", kept_id), ("Deposited", None)]
    assert world.deployer.deal_state(lost).status is DealStatus.NONE


def test_a_watcher_poll_asks_for_the_head_and_what_it_cannot_know_from_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An idle poll is one request; a block later, the head's header vouches for the block
    scanned last (its parent), so only the logs are asked for; further on, one hash more."""
    watcher = EventWatcher(world.chain, world.address, from_block=world.chain.block_number() + 1)
    world.stranger.deposit(1)
    assert [e.name for e in watcher.poll()] == ["Deposited"]
    manager = world.chain.w3.manager
    asked: list[str] = []
    make_request = manager._make_request

    def counted(method, params):  # type: ignore[no-untyped-def]
        asked.append(str(method))
        return make_request(method, params)

    monkeypatch.setattr(manager, "_make_request", counted)

    def poll_asking() -> tuple[list[str], list[str]]:
        asked.clear()
        names = [e.name for e in watcher.poll()]
        return names, list(asked)

    assert poll_asking() == ([], ["eth_getBlockByNumber"])
    world.stranger.deposit(2)
    assert poll_asking() == (["Deposited"], ["eth_getBlockByNumber", "eth_getLogs"])
    world.stranger.deposit(3)
    world.stranger.deposit(4)
    assert poll_asking() == (["Deposited", "Deposited"],
                             ["eth_getBlockByNumber", "eth_getBlockByNumber", "eth_getLogs"])
