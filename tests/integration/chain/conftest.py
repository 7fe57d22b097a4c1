"""Real chains for the settlement tests: every test runs on the embedded EVM and on anvil.

Each test gets a freshly deployed contract (cheap) on a chain shared by the session, funded test
accounts, five registered mediators, and a conservation check when it ends: the contract's ETH
balance equals all accounts' free + locked balances + mediator stakes + unclaimed mediation fees,
with every account found from the contract's own events (through the EventWatcher).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chain_world import DEPOSIT, MIN_STAKE, WITHDRAW_NOTICE_S, World

from lilypad_p2p.chain import Chain, SettlementClient, deploy_settlement
from lilypad_p2p.testing import (
    anvil_binary,
    anvil_test_chain,
    chain_test_accounts,
    embedded_test_chain,
    require_real,
)


@pytest.fixture(scope="session")
def embedded_chain() -> Chain:
    return embedded_test_chain()


@pytest.fixture(scope="session")
def anvil_chain() -> Iterator[Chain]:
    if anvil_binary() is None:
        require_real("anvil", "contracts/node_modules has no anvil: run scripts/setup (npm ci)")
    with anvil_test_chain() as chain:
        yield chain


@pytest.fixture(params=["embedded", "anvil"])
def chain(request: pytest.FixtureRequest) -> Chain:
    return request.getfixturevalue(f"{request.param}_chain")


@pytest.fixture
def world(chain: Chain) -> Iterator[World]:
    accounts = chain_test_accounts()
    deployer, job_creator, provider, stranger, *rest = accounts
    deployed_at = chain.block_number() + 1
    address = deploy_settlement(
        chain, deployer, withdraw_notice_s=WITHDRAW_NOTICE_S, min_mediator_stake=MIN_STAKE
    )
    base = SettlementClient(chain, address, deployer)
    mediator_accounts = sorted(rest[:5], key=lambda a: int(a.address, 16))
    world = World(
        chain=chain,
        deployer=base,
        job_creator=base.with_account(job_creator),
        provider=base.with_account(provider),
        stranger=base.with_account(stranger),
        mediators=[base.with_account(a) for a in mediator_accounts],
        spare=rest[5:],
        deployed_at=deployed_at,
    )
    world.job_creator.deposit(DEPOSIT)
    world.provider.deposit(DEPOSIT)
    for mediator in world.mediators:
        mediator.register_mediator(MIN_STAKE)
    yield world
    assert chain.balance_of(address) == world.accounted_total(), "conservation broken"
