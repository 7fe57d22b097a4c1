"""Chains for tests: the embedded EVM with the test accounts funded in its genesis, a fresh
anvil with them funded, and moving a dev chain's time and history (snapshots, reorgs), also
along with trio's mock clock (`chain_follows_clock`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import trio
from web3 import EthereumTesterProvider

from lilypad_p2p.blocking import run_blocking
from lilypad_p2p.chain import Backend, Chain, open_embedded_chain, open_rpc_chain
from lilypad_p2p.localnet import (
    TEST_ACCOUNT_COUNT,
    TEST_BALANCE_WEI,
    chain_test_accounts,
    dev_rpc,
    fund_on_anvil,
    running_anvil,
)


def embedded_test_chain(count: int = TEST_ACCOUNT_COUNT) -> Chain:
    """A fresh in-process chain whose genesis funds `chain_test_accounts(count)`."""
    return open_embedded_chain((a.address, TEST_BALANCE_WEI) for a in chain_test_accounts(count))


def _embedded_tester(chain: Chain) -> Any:
    """The embedded chain's eth-tester, which travels time and takes snapshots."""
    provider = chain.w3.provider
    assert isinstance(provider, EthereumTesterProvider), "an embedded chain has a tester"
    return provider.ethereum_tester


@contextmanager
def anvil_test_chain(count: int = TEST_ACCOUNT_COUNT) -> Iterator[Chain]:
    """A fresh anvil with `chain_test_accounts(count)` funded; stopped on exit."""
    with running_anvil() as url:
        chain = open_rpc_chain(url)
        fund_on_anvil(chain, chain_test_accounts(count))
        yield chain


def advance_chain_time(chain: Chain, seconds: int) -> int:
    """Mine a block `seconds` after the latest one (dev chains only); returns its timestamp."""
    _mine_at(chain, chain.now() + seconds)
    return chain.now()


def _mine_at(chain: Chain, timestamp: int) -> None:
    """Mine a block at `timestamp` (dev chains only; not before the latest block)."""
    if chain.backend is Backend.EMBEDDED:
        tester = _embedded_tester(chain)
        # eth-tester's time_travel mines at one second before the time it is given (it expects
        # py-evm to add a second when mining, which py-evm no longer does).
        chain.rpc(lambda: tester.time_travel(timestamp + 1))
    else:
        dev_rpc(chain, "evm_setNextBlockTimestamp", [timestamp])
        dev_rpc(chain, "evm_mine", [])


async def chain_follows_clock(
    chain: Chain, clock_ms: Callable[[], int], *, step_s: float = 1.0,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Keep a dev chain's time up with `clock_ms` (a role's clock), checked every `step_s` of
    trio time: on an autojumping `MockClock` the contract's deadlines then pass when the
    roles' do, hours in no real time. The chain never goes back; between checks it may lag by
    up to `step_s`, as a real chain's next block does."""
    task_status.started()
    while True:
        target = clock_ms() // 1000
        if target > await run_blocking(chain.now):
            await run_blocking(_mine_at, chain, target)
        await trio.sleep(step_s)


def snapshot_chain(chain: Chain) -> object:
    """Remember the chain's state (dev chains only); `revert_chain` goes back to it."""
    if chain.backend is Backend.EMBEDDED:
        tester = _embedded_tester(chain)
        return chain.rpc(tester.take_snapshot)
    return dev_rpc(chain, "evm_snapshot", [])["result"]


def revert_chain(chain: Chain, snapshot: object) -> None:
    """Rewind to `snapshot`: later blocks are dropped, as in a reorg."""
    if chain.backend is Backend.EMBEDDED:
        tester = _embedded_tester(chain)
        chain.rpc(lambda: tester.revert_to_snapshot(snapshot))
    else:
        dev_rpc(chain, "evm_revert", [snapshot])
    chain.resync_nonces()
