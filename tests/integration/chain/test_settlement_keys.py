"""Payout address and key rotation, from the attacker's side, on both backends.

The thief holds only the hot node key (here the provider's account, which holds a deposit); the
owner holds the same hot key and a cold payout wallet. Every call is sent raw with `send`, and
the rotation consent is signed by code written here from EIP-712 (not the client's helpers), so
every refusal comes from the contract. The world fixture checks conservation when each test ends.
"""

from __future__ import annotations

import pytest
from chain_world import DEPOSIT, PAYMENT, WITHDRAW_NOTICE_S, World
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_keys import keys as eth_keys
from eth_utils import keccak

from lilypad_p2p.chain import AccountBalance, ContractRevert, SettlementClient
from lilypad_p2p.testing import advance_chain_time

pytestmark = pytest.mark.chain

UINT256_MAX = 2**256 - 1
DELAY_S = 2 * WITHDRAW_NOTICE_S


def _rotation_signature(world: World, from_address: str, new_key: bytes) -> bytes:
    """EIP-712 KeyRotation(from, to) signed by `new_key`, built from the spec."""
    domain_separator = keccak(abi_encode(
        ["bytes32", "bytes32", "bytes32", "uint256", "address"],
        [keccak(text="EIP712Domain(string name,string version,uint256 chainId,"
                     "address verifyingContract)"),
         keccak(text="LilypadSettlement"), keccak(text="1"), world.chain.chain_id,
         world.address],
    ))
    to = eth_keys.PrivateKey(new_key).public_key.to_checksum_address()
    struct = keccak(abi_encode(["bytes32", "address", "address"],
                               [keccak(text="KeyRotation(address from,address to)"),
                                from_address, to]))
    digest = keccak(b"\x19\x01" + domain_separator + struct)
    signature = eth_keys.PrivateKey(new_key).sign_msg_hash(digest)
    return signature.to_bytes()[:64] + bytes([signature.v + 27])


def _wallet(world: World, address: str) -> int:
    return world.chain.balance_of(address)


def _free(world: World, address: str) -> int:
    return world.deployer.balance(address).free


def _payout_of(world: World, address: str) -> str:
    return world.deployer._view("payoutOf", address)


@pytest.fixture
def owned(world: World) -> tuple[SettlementClient, str, SettlementClient]:
    """(hot key client, cold payout address, a client acting as the cold wallet)."""
    hot = world.provider
    cold = world.spare[0]
    hot.send("setPayoutAddress", cold.address)
    return hot, cold.address, hot.with_account(cold)


def test_first_payout_address_takes_effect_at_once(world: World, owned) -> None:
    hot, cold, _ = owned
    assert _payout_of(world, hot.account.address) == cold
    assert _payout_of(world, world.job_creator.account.address) == world.job_creator.account.address


def test_thief_with_the_hot_key_withdraws_only_to_the_payout_address(world: World, owned) -> None:
    thief, cold, _ = owned
    thief_wallet = Account.create().address
    thief.send("setPayoutAddress", thief_wallet)  # only announced
    cold_before = _wallet(world, cold)
    thief.send("requestWithdraw", UINT256_MAX)
    advance_chain_time(world.chain, WITHDRAW_NOTICE_S)
    thief.send("withdraw")
    assert _wallet(world, cold) - cold_before == DEPOSIT
    assert _wallet(world, thief_wallet) == 0
    assert _free(world, thief.account.address) == 0


def test_thief_cannot_redirect_before_the_delay(world: World, owned) -> None:
    thief, cold, _ = owned
    thief_wallet = Account.create().address
    thief.send("setPayoutAddress", thief_wallet)
    thief.send("requestWithdraw", UINT256_MAX)
    advance_chain_time(world.chain, DELAY_S - 30)
    assert _payout_of(world, thief.account.address) == cold
    thief.send("withdraw")
    assert _wallet(world, thief_wallet) == 0
    # Announcing again restarts the delay rather than shortening it.
    thief.send("setPayoutAddress", thief_wallet)
    advance_chain_time(world.chain, 60)
    assert _payout_of(world, thief.account.address) == cold
    # The hot key cannot cancel or shortcut anything the payout address controls.
    with pytest.raises(ContractRevert, match="NotPayoutAddress"):
        thief.send("cancelPayoutChange", thief.account.address)


def test_owner_wins_the_race_by_withdrawing_within_the_delay(world: World, owned) -> None:
    thief, cold, _ = owned
    owner = thief  # the owner holds the same hot key
    thief_wallet = Account.create().address
    thief.send("setPayoutAddress", thief_wallet)
    advance_chain_time(world.chain, DELAY_S // 2 - 60)  # the owner notices late in the first half
    owner.send("requestWithdraw", UINT256_MAX)
    # The thief tries to restart or shrink the owner's request: a smaller one changes nothing.
    thief.send("requestWithdraw", 1)
    request = world.deployer.balance(owner.account.address)
    assert request.withdraw_requested == 2**128 - 1
    cold_before = _wallet(world, cold)
    advance_chain_time(world.chain, WITHDRAW_NOTICE_S)
    owner.send("withdraw")
    assert _wallet(world, cold) - cold_before == DEPOSIT
    advance_chain_time(world.chain, DELAY_S)
    assert _payout_of(world, thief.account.address) == thief_wallet  # the change landed...
    thief.send("requestWithdraw", UINT256_MAX)
    advance_chain_time(world.chain, WITHDRAW_NOTICE_S)
    thief.send("withdraw")
    assert _wallet(world, thief_wallet) == 0  # ...on an empty account


def test_owner_wins_the_race_by_cancelling_with_the_cold_key(world: World, owned) -> None:
    thief, cold, cold_client = owned
    thief_wallet = Account.create().address
    thief.send("setPayoutAddress", thief_wallet)
    stranger = world.stranger
    with pytest.raises(ContractRevert, match="NotPayoutAddress"):
        stranger.send("cancelPayoutChange", thief.account.address)
    cold_client.send("cancelPayoutChange", thief.account.address)
    advance_chain_time(world.chain, DELAY_S + 1)
    assert _payout_of(world, thief.account.address) == cold
    with pytest.raises(ContractRevert, match="NoPayoutChange"):
        cold_client.send("cancelPayoutChange", thief.account.address)


def test_owner_changes_the_payout_address_after_the_delay(world: World, owned) -> None:
    hot, _, _ = owned
    new_cold = Account.create().address
    hot.send("setPayoutAddress", new_cold)
    advance_chain_time(world.chain, DELAY_S + 1)
    assert _payout_of(world, hot.account.address) == new_cold
    hot.send("requestWithdraw", PAYMENT)
    advance_chain_time(world.chain, WITHDRAW_NOTICE_S)
    hot.send("withdraw")
    assert _wallet(world, new_cold) == PAYMENT
    with pytest.raises(ContractRevert, match="ZeroAddress"):
        hot.send("setPayoutAddress", "0x" + "00" * 20)


def test_mediator_stake_on_exit_is_withdrawn_to_the_payout_address(world: World) -> None:
    mediator = world.mediators[0]
    cold = Account.create().address
    mediator.send("setPayoutAddress", cold)
    mediator.request_mediator_exit()
    advance_chain_time(world.chain, WITHDRAW_NOTICE_S)
    mediator.complete_mediator_exit()
    stake = _free(world, mediator.account.address)
    assert stake > 0
    mediator.send("requestWithdraw", UINT256_MAX)
    advance_chain_time(world.chain, WITHDRAW_NOTICE_S)
    mediator.send("withdraw")
    assert _wallet(world, cold) == stake


def test_rotation_moves_exactly_the_free_balance_and_the_payout_record(
    world: World, owned
) -> None:
    hot, cold, _ = owned
    old = hot.account.address
    new_key = Account.create()
    hot.send("requestWithdraw", PAYMENT)
    hot.send("setPayoutAddress", new_key.address)  # a pending change moves too
    contract_before = _wallet(world, world.address)
    free_before = _free(world, old)
    receipt = hot.send("rotateKey", new_key.address, _rotation_signature(world, old, new_key.key))
    assert ("KeyRotated", {"account": old, "successor": new_key.address, "free": free_before}) in (
        hot.decode_events(receipt))
    assert _free(world, new_key.address) == free_before == DEPOSIT
    assert world.deployer.balance(old) == AccountBalance(0, 0, 0, 0)
    assert _wallet(world, world.address) == contract_before
    assert world.deployer._view("successorOf", old) == new_key.address
    assert _payout_of(world, new_key.address) == cold
    assert world.deployer._view("payoutChanges", new_key.address)[0] == new_key.address
    # The old key is retired: it cannot withdraw or rotate again.
    hot.send("requestWithdraw", 1)
    advance_chain_time(world.chain, WITHDRAW_NOTICE_S)
    with pytest.raises(ContractRevert, match="AlreadyRotated"):
        hot.send("withdraw")
    with pytest.raises(ContractRevert, match="AlreadyRotated"):
        hot.send("rotateKey", Account.create().address, b"\x00" * 65)


def test_thief_rotating_to_its_own_key_still_pays_the_payout_address(
    world: World, owned
) -> None:
    thief, cold, _ = owned
    thief_key = Account.create()
    world.deployer.chain.transact(world.spare[1], thief_key.address, b"", 10**18)
    thief.send("rotateKey", thief_key.address,
               _rotation_signature(world, thief.account.address, thief_key.key))
    as_new = thief.with_account(thief_key)
    cold_before = _wallet(world, cold)
    as_new.send("requestWithdraw", UINT256_MAX)
    advance_chain_time(world.chain, WITHDRAW_NOTICE_S)
    as_new.send("withdraw")
    assert _wallet(world, cold) - cold_before == DEPOSIT


def test_rotation_refuses_bad_consent_busy_targets_and_locked_funds(world: World) -> None:
    hot = world.provider
    old = hot.account.address
    new_key = Account.create()
    # consent signed by another key, or for another `from`, is refused
    with pytest.raises(ContractRevert, match="WrongSigner"):
        hot.send("rotateKey", new_key.address,
                 _rotation_signature(world, old, Account.create().key))
    with pytest.raises(ContractRevert, match="WrongSigner"):
        hot.send("rotateKey", new_key.address,
                 _rotation_signature(world, world.stranger.account.address, new_key.key))
    # a target that already holds an account record is refused (no merging)
    busy = world.job_creator.account
    with pytest.raises(ContractRevert, match="RotationTargetInUse"):
        hot.send("rotateKey", busy.address, _rotation_signature(world, old, busy.key))
    # a registered mediator must exit first
    mediator = world.mediators[0]
    with pytest.raises(ContractRevert, match="StillMediator"):
        mediator.send("rotateKey", new_key.address,
                      _rotation_signature(world, mediator.account.address, new_key.key))
    # money locked in an open deal blocks the rotation until the deal ends
    deal = world.deal()
    world.open(deal)
    with pytest.raises(ContractRevert, match="FundsLocked"):
        hot.send("rotateKey", new_key.address, _rotation_signature(world, old, new_key.key))
    result = b"\x22" * 32
    world.job_creator.settle(deal, result, world.job_creator.sign(
        world.job_creator.acceptance(deal, result)))
    hot.send("rotateKey", new_key.address, _rotation_signature(world, old, new_key.key))
    assert _free(world, new_key.address) == DEPOSIT + PAYMENT


def test_credit_to_a_rotated_key_is_swept_to_its_successor(world: World) -> None:
    hot = world.provider
    old = hot.account.address
    # A deal that locks nothing of the provider stays open across the rotation.
    deal = world.deal(collateral=0)
    world.open(deal)
    new_key = Account.create()
    hot.send("rotateKey", new_key.address, _rotation_signature(world, old, new_key.key))
    result = b"\x33" * 32
    world.submit_result(deal, result)  # the old key still signs for its open deal
    world.job_creator.settle(deal, result, world.job_creator.sign(
        world.job_creator.acceptance(deal, result)))
    assert _free(world, old) == PAYMENT
    world.stranger.send("sweepRotated", old)
    assert _free(world, old) == 0
    assert _free(world, new_key.address) == DEPOSIT + PAYMENT
    with pytest.raises(ContractRevert, match="ZeroAmount"):
        world.stranger.send("sweepRotated", old)
    with pytest.raises(ContractRevert, match="NotRotated"):
        world.stranger.send("sweepRotated", world.job_creator.account.address)


def test_cold_key_alone_empties_an_account_a_thief_rotated_away(world: World, owned) -> None:
    thief, _, cold_client = owned
    thief_key = Account.create()
    thief.send("rotateKey", thief_key.address,
               _rotation_signature(world, thief.account.address, thief_key.key))
    with pytest.raises(ContractRevert, match="NotPayoutAddress"):
        world.stranger.send("requestWithdrawFor", thief_key.address, UINT256_MAX)
    with pytest.raises(ContractRevert, match="NotPayoutAddress"):
        world.stranger.send("requestWithdrawFor", world.job_creator.account.address, 1)
    cold_client.send("requestWithdrawFor", thief_key.address, UINT256_MAX)
    advance_chain_time(world.chain, WITHDRAW_NOTICE_S)
    with pytest.raises(ContractRevert, match="NotPayoutAddress"):
        world.stranger.send("withdrawFor", thief_key.address)
    contract_before = _wallet(world, world.address)
    receipt = cold_client.send("withdrawFor", thief_key.address)
    assert ("Withdrawn", {"account": thief_key.address, "amount": DEPOSIT}) in (
        cold_client.decode_events(receipt))
    assert contract_before - _wallet(world, world.address) == DEPOSIT  # paid to cold, the sender
    assert _free(world, thief_key.address) == 0
