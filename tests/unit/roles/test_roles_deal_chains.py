"""A node's chain registry: opened from the config, checked against eth_chainId, looked up
per deal (on the embedded EVM)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from lilypad_p2p import wire
from lilypad_p2p.chain import Deal
from lilypad_p2p.config import ChainSettings, NodeConfig
from lilypad_p2p.errors import ConfigError
from lilypad_p2p.identity import Identity
from lilypad_p2p.roles import (
    DealChains,
    MediationRefused,
    MediatorRole,
    UnknownChain,
    deal_to_wire,
    open_deal_chains,
)
from lilypad_p2p.roles._terms import module_hash
from lilypad_p2p.testing._mediation import ChunksGate

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


async def test_a_mediator_refuses_a_deal_on_a_chain_it_does_not_serve(tmp_path: Path):
    identity = Identity.generate()
    chains = await open_deal_chains(NodeConfig(home=tmp_path), identity)

    async def no_executor():
        raise AssertionError("nothing runs for a refused request")

    mediator = MediatorRole(identity, chains=chains, executor_factory=no_executor, stake_wei=1,
                            spool=tmp_path)
    other = Identity.generate().address
    deal = Deal(job_creator=other, provider=other, payment=1, collateral=1, mediation_fee=0,
                mediators=(identity.address,), threshold=1, result_deadline=10**10,
                acceptance_window=60, mediation_window=600, job_spec_hash=bytes(32),
                module_hash=module_hash("hash"), salt=bytes(32))
    request = wire.MediationRequest(
        chain_id=7, deal=deal_to_wire(deal), module="hash",
        inputs_preamble=bytes(wire.PREAMBLE_BYTES), inputs_bytes=2**30,
        inputs_nonce=bytes(32), job_offer=b"a job offer",
        result_hash=bytes(32), provider_signature=bytes(65), output_recipient=b"")
    gate = ChunksGate(lambda: (_ for _ in ()).throw(AssertionError("no input byte is read")))
    with pytest.raises(MediationRefused, match="chain 7 is not one of this node's chains"):
        await mediator.judge(request, gate)
    assert gate.asked == []


async def test_a_mediator_without_docker_starts_registers_and_refuses_until_docker_answers(
    tmp_path: Path,
):
    from lilypad_p2p.exec import ExecError

    identity = Identity.generate()
    chains = await open_deal_chains(NodeConfig(home=tmp_path), identity)
    answers = iter([ExecError("Docker is not reachable"), "an executor"])

    async def docker_comes_later():
        answer = next(answers)
        if isinstance(answer, ExecError):
            raise answer
        return answer

    mediator = MediatorRole(identity, chains=chains, executor_factory=docker_comes_later,
                            stake_wei=10**18, spool=tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(mediator.run)  # it used to end here, and take the node with it
        assert await chains.default.client.is_registered_mediator(identity.address)
        assert await mediator._connect_executor() == "an executor"
        nursery.cancel_scope.cancel()
