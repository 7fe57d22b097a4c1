"""On-chain request tests run on real anvil chains (two of them for the cross-chain tests)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from onchain_world import OnchainWorld

from lilypad_p2p.chain import Chain, open_rpc_chain
from lilypad_p2p.testing import anvil_binary, anvil_test_chain, require_real

SECOND_CHAIN_ID = 31_338


def _require_anvil() -> None:
    if anvil_binary() is None:
        require_real("anvil", "contracts/node_modules has no anvil: run scripts/setup (npm ci)")


@pytest.fixture(scope="session")
def anvil_a() -> Iterator[Chain]:
    _require_anvil()
    with anvil_test_chain() as chain:
        yield chain


@pytest.fixture(scope="session")
def anvil_b() -> Iterator[Chain]:
    """A second anvil with another chain id (anvil's default is 31337 on both otherwise)."""
    _require_anvil()
    with anvil_test_chain() as first:
        first.rpc(lambda: first.w3.provider.make_request(  # type: ignore[attr-defined]
            "anvil_setChainId", [SECOND_CHAIN_ID]))
        chain = open_rpc_chain(first.w3.provider.endpoint_uri)  # type: ignore[attr-defined]
        assert chain.chain_id == SECOND_CHAIN_ID
        yield chain


@pytest.fixture
def world(anvil_a: Chain) -> OnchainWorld:
    return OnchainWorld.deploy(anvil_a)
