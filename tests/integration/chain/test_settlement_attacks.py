"""Attacks the settlement contract must refuse, on both backends.

Signatures are packed by hand and sent with `send` (bypassing the client's own sorting and
checks), so every refusal here comes from the contract.
"""

from __future__ import annotations

import pytest
from chain_world import DEPOSIT, PAYMENT, WITHDRAW_NOTICE_S, World
from eth_account import Account

from lilypad_p2p.chain import (
    AlreadySettled,
    ContractRevert,
    Deal,
    DealStatus,
    Domain,
    Outcome,
    SettlementClient,
    SignatureRejected,
    Verdict,
    artifact,
    deploy_settlement,
    recover_typed,
    sign_typed,
)
from lilypad_p2p.chain._typed import HALF_CURVE_ORDER
from lilypad_p2p.testing import advance_chain_time

pytestmark = pytest.mark.chain

RESULT = b"\x11" * 32
CURVE_ORDER = 2 * HALF_CURVE_ORDER + 1


def _disputed(world: World) -> Deal:
    deal = world.deal()
    world.open(deal)
    world.submit_result(deal, RESULT)
    world.job_creator.dispute(deal)
    return deal


def _resolve_raw(world: World, deal: Deal, verdict: Verdict, packed: bytes, **kw: object) -> None:
    world.stranger.send(
        "resolve", deal.terms_abi(), list(deal.mediators), int(verdict.outcome),
        verdict.result_hash, packed, **kw,
    )


def _sorted_sigs(world: World, verdict: Verdict, sigs: list[bytes]) -> list[bytes]:
    domain = world.deployer.domain
    return sorted(sigs, key=lambda s: int(recover_typed(verdict, domain, s), 16))


def _high_s(signature: bytes) -> bytes:
    """The malleable twin: (r, n - s, v flipped) recovers the same signer."""
    s = int.from_bytes(signature[32:64], "big")
    v = 27 + 28 - signature[64]
    return signature[:32] + (CURVE_ORDER - s).to_bytes(32, "big") + bytes([v])


def _verdict(world: World, deal: Deal) -> Verdict:
    return Verdict(world.deployer.deal_id(deal), Outcome.PROVIDER_CORRECT, RESULT)


def test_forged_mediator_signature(world: World) -> None:
    deal = _disputed(world)
    verdict = _verdict(world, deal)
    outsider = Account.create()
    sigs = [m.sign(verdict) for m in world.mediators[:2]]
    sigs.append(sign_typed(verdict, world.deployer.domain, outsider))
    with pytest.raises(SignatureRejected, match="NotInConsortium"):
        _resolve_raw(world, deal, verdict, b"".join(_sorted_sigs(world, verdict, sigs)))
    # a signature over another verdict recovers to some unrelated address
    other = Verdict(verdict.deal_id, Outcome.PROVIDER_WRONG, b"\x33" * 32)
    tampered = [m.sign(verdict) for m in world.mediators[:2]] + [world.mediators[2].sign(other)]
    with pytest.raises(SignatureRejected):
        _resolve_raw(world, deal, verdict, b"".join(tampered))
    garbage = b"\x01" * 64 + b"\x1b"
    with pytest.raises(SignatureRejected):
        _resolve_raw(world, deal, verdict, b"".join(tampered[:2]) + garbage)
    assert world.deployer.deal_state(deal).status is DealStatus.DISPUTED


def test_duplicated_mediator_signature(world: World) -> None:
    deal = _disputed(world)
    verdict = _verdict(world, deal)
    sigs = _sorted_sigs(world, verdict, [m.sign(verdict) for m in world.mediators[:2]])
    with pytest.raises(SignatureRejected, match="SignersNotAscending"):
        _resolve_raw(world, deal, verdict, sigs[0] + sigs[1] + sigs[1])


def test_unsorted_mediator_signatures(world: World) -> None:
    deal = _disputed(world)
    verdict = _verdict(world, deal)
    sigs = _sorted_sigs(world, verdict, [m.sign(verdict) for m in world.mediators[:3]])
    with pytest.raises(SignatureRejected, match="SignersNotAscending"):
        _resolve_raw(world, deal, verdict, sigs[1] + sigs[0] + sigs[2])


def test_too_few_mediator_signatures(world: World) -> None:
    deal = _disputed(world)
    verdict = _verdict(world, deal)
    sigs = _sorted_sigs(world, verdict, [m.sign(verdict) for m in world.mediators[:2]])
    with pytest.raises(SignatureRejected, match="NotEnoughSignatures"):
        _resolve_raw(world, deal, verdict, b"".join(sigs))
    with pytest.raises(SignatureRejected, match="NotEnoughSignatures"):  # mined, not estimated
        _resolve_raw(world, deal, verdict, b"".join(sigs), gas=500_000)


def test_unregistered_mediator_in_the_consortium(world: World) -> None:
    unregistered = world.deployer.with_account(world.spare[2])
    mediators = sorted(
        [m.account.address for m in world.mediators[:2]] + [unregistered.account.address],
        key=lambda a: int(a, 16),
    )
    deal = world.deal(mediators=tuple(mediators), threshold=3)
    world.open(deal)
    world.submit_result(deal, RESULT)
    world.job_creator.dispute(deal)
    verdict = _verdict(world, deal)
    signers = [*world.mediators[:2], unregistered]
    sigs = _sorted_sigs(world, verdict, [s.sign(verdict) for s in signers])
    with pytest.raises(SignatureRejected, match="UnregisteredMediator"):
        _resolve_raw(world, deal, verdict, b"".join(sigs))


def test_high_s_signatures_are_refused(world: World) -> None:
    deal = _disputed(world)
    verdict = _verdict(world, deal)
    sigs = _sorted_sigs(world, verdict, [m.sign(verdict) for m in world.mediators[:3]])
    with pytest.raises(SignatureRejected, match="MalleableSignature"):
        _resolve_raw(world, deal, verdict, sigs[0] + _high_s(sigs[1]) + sigs[2])
    # and for the parties' signatures too
    fresh = world.deal()
    with pytest.raises(SignatureRejected, match="MalleableSignature"):
        world.job_creator.send(
            "openDeal", fresh.terms_abi(), list(fresh.mediators),
            _high_s(world.job_creator.sign(fresh)), world.provider.sign(fresh),
        )


def test_deal_signature_replayed_on_another_deal(world: World) -> None:
    signed = world.deal()
    other = world.deal(payment=PAYMENT * 2)
    with pytest.raises(SignatureRejected, match="WrongSigner"):
        world.job_creator.open_deal(
            other, world.job_creator.sign(signed), world.provider.sign(signed)
        )


def test_deal_signature_replayed_on_another_contract(world: World) -> None:
    deal = world.deal()
    sig_jc, sig_rp = world.job_creator.sign(deal), world.provider.sign(deal)
    world.open(deal)
    twin_address = deploy_settlement(
        world.chain, world.deployer.account, withdraw_notice_s=WITHDRAW_NOTICE_S
    )
    twin = SettlementClient(world.chain, twin_address, world.job_creator.account)
    twin.deposit(DEPOSIT)
    twin.with_account(world.provider.account).deposit(DEPOSIT)
    with pytest.raises(SignatureRejected, match="WrongSigner"):
        twin.open_deal(deal, sig_jc, sig_rp)
    # conservation on the twin too (no deal opened, so deposits are all there is)
    assert world.chain.balance_of(twin_address) == 2 * DEPOSIT


def test_deal_signature_for_another_chain_id(world: World) -> None:
    deal = world.deal()
    foreign = Domain(world.chain.chain_id + 1, world.address)
    sig_jc = sign_typed(deal, foreign, world.job_creator.account)
    sig_rp = sign_typed(deal, foreign, world.provider.account)
    with pytest.raises(SignatureRejected, match="WrongSigner"):
        world.job_creator.open_deal(deal, sig_jc, sig_rp)


def test_verdict_signed_for_another_chain_id(world: World) -> None:
    deal = _disputed(world)
    verdict = _verdict(world, deal)
    foreign = Domain(world.chain.chain_id + 1, world.address)
    sigs = [sign_typed(verdict, foreign, m.account) for m in world.mediators[:3]]
    with pytest.raises(SignatureRejected):  # recovers to addresses outside the consortium
        _resolve_raw(world, deal, verdict, b"".join(sigs))
    assert world.deployer.deal_state(deal).status is DealStatus.DISPUTED


def test_acceptance_signed_by_someone_else(world: World) -> None:
    deal = world.deal()
    world.open(deal)
    acceptance = world.job_creator.acceptance(deal, RESULT)
    for impostor in (world.provider, world.stranger):
        with pytest.raises(SignatureRejected, match="WrongSigner"):
            world.provider.settle(deal, RESULT, impostor.sign(acceptance))
    assert world.deployer.deal_state(deal).status is DealStatus.OPEN
    assert world.provider.balance().free == DEPOSIT - world.deal().collateral


def test_result_commitment_signed_by_someone_else(world: World) -> None:
    deal = world.deal()
    world.open(deal)
    commitment = world.provider.result_commitment(deal, RESULT)
    with pytest.raises(SignatureRejected, match="WrongSigner"):
        world.job_creator.submit_result(deal, RESULT, world.job_creator.sign(commitment))


def test_resolve_twice(world: World) -> None:
    deal = _disputed(world)
    verdict = _verdict(world, deal)
    sigs = _sorted_sigs(world, verdict, [m.sign(verdict) for m in world.mediators[:3]])
    _resolve_raw(world, deal, verdict, b"".join(sigs))
    provider_free = world.provider.balance().free
    with pytest.raises(AlreadySettled):
        _resolve_raw(world, deal, verdict, b"".join(sigs))
    with pytest.raises(AlreadySettled):
        world.stranger.settle(deal, RESULT, world.job_creator.sign(
            world.job_creator.acceptance(deal, RESULT)))
    assert world.provider.balance().free == provider_free


def _receiver(world: World, refuse: bool) -> str:
    built = artifact("ReentrantReceiver")
    factory = world.chain.w3.eth.contract(abi=built["abi"], bytecode=built["bytecode"])
    data = factory.constructor(world.address, refuse).data_in_transaction
    receipt = world.chain.transact(world.deployer.account, None, bytes.fromhex(data[2:]))
    assert receipt.contract_address is not None
    return receipt.contract_address


def _call_receiver(world: World, address: str, function: str, *args: object, value: int = 0):
    abi = artifact("ReentrantReceiver")["abi"]
    contract = world.chain.w3.eth.contract(address=address, abi=abi)
    data = bytes.fromhex(contract.encode_abi(function, args=list(args))[2:])
    world.chain.transact(world.stranger.account, address, data, value)
    return contract


def test_reentrancy_through_a_malicious_receiver(world: World) -> None:
    attacker = _receiver(world, refuse=False)
    amount = 5 * 10**18
    _call_receiver(world, attacker, "depositAndRequest", amount, value=amount)
    advance_chain_time(world.chain, WITHDRAW_NOTICE_S)
    contract = _call_receiver(world, attacker, "attack")
    assert world.chain.rpc(lambda: contract.functions.paymentsReceived().call()) == 1
    assert world.chain.rpc(lambda: contract.functions.reentrySucceeded().call()) is False
    assert world.chain.balance_of(attacker) == amount
    assert world.deployer.balance(attacker).free == 0


def test_receiver_refusing_payment_keeps_its_balance(world: World) -> None:
    refuser = _receiver(world, refuse=True)
    amount = 10**18
    _call_receiver(world, refuser, "depositAndRequest", amount, value=amount)
    advance_chain_time(world.chain, WITHDRAW_NOTICE_S)
    with pytest.raises(ContractRevert, match="TransferFailed"):
        _call_receiver(world, refuser, "attack")
    balance = world.deployer.balance(refuser)
    assert (balance.free, balance.withdraw_requested) == (amount, amount)
