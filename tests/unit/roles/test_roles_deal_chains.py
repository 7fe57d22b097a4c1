"""A node's chain registry: opened from the config, checked against eth_chainId, looked up
per deal (on the embedded EVM)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lilypad_p2p.config import ChainSettings, NodeConfig
from lilypad_p2p.errors import ConfigError
from lilypad_p2p.identity import Identity
from lilypad_p2p.roles import DealChains, UnknownChain, open_deal_chains

EMBEDDED_CHAIN_ID = 131277322940537  # eth-tester's chain ID


async def test_an_embedded_chain_is_checked_against_its_configured_id(tmp_path: Path):
    identity = Identity.generate()
    wrong = NodeConfig(home=tmp_path, chain_list=(ChainSettings(5, None, None, None),))
    with pytest.raises(ConfigError, match="reports chain ID 131277322940537"):
        await open_deal_chains(wrong, identity)
    right = NodeConfig(home=tmp_path,
                       chain_list=(ChainSettings(EMBEDDED_CHAIN_ID, None, None, None),))
    chains = await open_deal_chains(right, identity)
    assert chains.ids == (EMBEDDED_CHAIN_ID,)
    assert chains.require(None) is chains.default is chains[EMBEDDED_CHAIN_ID]
    with pytest.raises(UnknownChain, match="chain 7 is not one of this node's chains"):
        chains.require(7)
    # The [chain] shorthand takes whatever the chain reports.
    shorthand = await open_deal_chains(NodeConfig(home=tmp_path), identity)
    assert shorthand.default.chain_id == EMBEDDED_CHAIN_ID


async def test_two_chains_reporting_one_id_are_refused(tmp_path: Path):
    identity = Identity.generate()
    one = (await open_deal_chains(NodeConfig(home=tmp_path), identity)).default
    other = (await open_deal_chains(NodeConfig(home=tmp_path), identity)).default
    with pytest.raises(ConfigError, match="same chain ID"):
        DealChains([one, other])
    with pytest.raises(ValueError):
        DealChains([])
