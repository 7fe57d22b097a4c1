"""The whole deal lifecycle on a real EVM, on both backends (embedded py-evm and anvil)."""

from __future__ import annotations

import os

import pytest
from chain_world import (
    ACCEPTANCE_WINDOW_S,
    COLLATERAL,
    DEPOSIT,
    FEE,
    MEDIATION_WINDOW_S,
    MIN_STAKE,
    PAYMENT,
    RESULT_WINDOW_S,
    WITHDRAW_NOTICE_S,
    World,
)

from lilypad_p2p.chain import (
    AlreadySettled,
    ChainError,
    ContractRevert,
    DeadlineError,
    DealAlreadyOpened,
    DealStatus,
    Outcome,
    SettlementItem,
    SignatureRejected,
)
from lilypad_p2p.chain import _watcher as watcher_module
from lilypad_p2p.identity import Identity
from lilypad_p2p.roles import DealChain
from lilypad_p2p.testing import advance_chain_time

pytestmark = pytest.mark.chain

RESULT = b"\x11" * 32
OTHER_RESULT = b"\x22" * 32


def free(world: World, client: object) -> int:
    return world.deployer.balance(client.account.address).free  # type: ignore[attr-defined]


def test_happy_path_pays_provider_once(world: World) -> None:
    deal = world.deal()
    deal_id = world.open(deal)
    jc = world.job_creator.balance()
    assert (jc.free, jc.locked) == (DEPOSIT - PAYMENT - FEE, PAYMENT + FEE)
    assert world.provider.balance().locked == COLLATERAL

    acceptance = world.job_creator.acceptance(deal, RESULT)
    signature = world.job_creator.sign(acceptance)
    receipt = world.provider.settle(deal, RESULT, signature)

    assert ("DealSettled", {"dealId": deal_id, "resultHash": RESULT}) in (
        world.provider.decode_events(receipt)
    )
    assert world.job_creator.balance().free == DEPOSIT - PAYMENT
    assert world.provider.balance().free == DEPOSIT + PAYMENT
    assert world.job_creator.balance().locked == world.provider.balance().locked == 0
    with pytest.raises(AlreadySettled):  # refused before sending
        world.provider.settle(deal, RESULT, signature)
    with pytest.raises(AlreadySettled):  # and by the contract, in a mined transaction
        world.job_creator.send("settle", deal.terms_abi(), RESULT, signature, gas=300_000)
    assert world.provider.balance().free == DEPOSIT + PAYMENT


def test_settle_after_result_recorded_on_chain(world: World) -> None:
    deal = world.deal()
    world.open(deal)
    world.submit_result(deal, RESULT)
    state = world.deployer.deal_state(deal)
    assert state.status is DealStatus.RESULT_SUBMITTED
    assert state.result_prefix == RESULT[:20]
    signature = world.job_creator.sign(world.job_creator.acceptance(deal, RESULT))
    world.stranger.settle(deal, RESULT, signature)  # anyone may carry the acceptance
    assert world.deployer.deal_state(deal).status is DealStatus.SETTLED
    assert free(world, world.provider) == DEPOSIT + PAYMENT


def test_a_recorded_result_hash_is_read_whole_from_its_event(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The record keeps 20 bytes of the hash; a job creator that never received the result
    # disputes it with the whole hash, read back from the head a window of blocks at a time.
    deal, unrecorded = world.deal(), world.deal()
    world.open(deal)
    world.open(unrecorded)
    world.submit_result(deal, RESULT)
    state = world.deployer.deal_state(deal)
    for _ in range(5):
        advance_chain_time(world.chain, 1)
    monkeypatch.setattr(watcher_module, "MAX_BLOCK_RANGE", 2)
    assert world.stranger.recorded_result_hash(state.deal_id, state.since) == RESULT
    with pytest.raises(ChainError, match="no ResultSubmitted event"):
        world.stranger.recorded_result_hash(world.deployer.deal_id(unrecorded), state.since)


def test_deal_opens_once(world: World) -> None:
    deal = world.deal()
    world.open(deal)
    with pytest.raises(DealAlreadyOpened):
        world.open(deal)
    with pytest.raises(DealAlreadyOpened):
        world.job_creator.send(
            "openDeal", deal.terms_abi(), list(deal.mediators),
            world.job_creator.sign(deal), world.provider.sign(deal),
        )
    assert world.job_creator.balance().locked == PAYMENT + FEE


def test_settle_batch_skips_settled_deals(world: World) -> None:
    second_provider = world.deployer.with_account(world.spare[0])
    second_provider.deposit(DEPOSIT)
    deals = [world.deal() for _ in range(4)]
    deals.append(world.deal(provider=second_provider.account.address))
    for deal in deals[:4]:
        world.open(deal)
    world.job_creator.open_deal(
        deals[4], world.job_creator.sign(deals[4]), second_provider.sign(deals[4])
    )
    items = [
        SettlementItem(d, RESULT, world.job_creator.sign(world.job_creator.acceptance(d, RESULT)))
        for d in deals
    ]
    world.provider.settle(items[0].deal, RESULT, items[0].job_creator_signature)

    # the contract itself skips the settled one (the client would have left it out), and a
    # deal listed twice in one batch pays once
    sent = [*items, items[2]]
    receipt = world.provider.send(
        "settleBatch",
        [i.deal.terms_abi() for i in sent],
        [i.result_hash for i in sent],
        [i.job_creator_signature for i in sent],
    )
    settled = [e for e in world.provider.decode_events(receipt) if e[0] == "DealSettled"]
    assert len(settled) == 4
    assert all(world.deployer.deal_state(d).status is DealStatus.SETTLED for d in deals)
    assert free(world, world.provider) == DEPOSIT + 4 * PAYMENT
    assert free(world, second_provider) == DEPOSIT + PAYMENT
    assert world.job_creator.balance() == world.job_creator.balance().__class__(
        DEPOSIT - 5 * PAYMENT, 0, 0, 0
    )
    assert world.provider.settle_batch(items) is None  # nothing left to send


def test_timeout_without_result_slashes_collateral_to_job_creator(world: World) -> None:
    deal = world.deal()
    world.open(deal)
    with pytest.raises(DeadlineError):
        world.job_creator.claim_timeout(deal)
    advance_chain_time(world.chain, RESULT_WINDOW_S + 1)
    with pytest.raises(DeadlineError):  # too late to post a result now
        world.submit_result(deal, RESULT)
    world.job_creator.claim_timeout(deal)
    assert world.deployer.deal_state(deal).status is DealStatus.TIMED_OUT_NO_RESULT
    assert world.job_creator.balance().free == DEPOSIT + COLLATERAL
    assert world.provider.balance().free == DEPOSIT - COLLATERAL
    with pytest.raises(AlreadySettled):
        world.job_creator.claim_timeout(deal)


def test_timeout_job_creator_silent_pays_provider(world: World) -> None:
    deal = world.deal()
    world.open(deal)
    world.submit_result(deal, RESULT)
    advance_chain_time(world.chain, ACCEPTANCE_WINDOW_S - 60)
    with pytest.raises(DeadlineError):
        world.provider.claim_timeout(deal)
    advance_chain_time(world.chain, 120)
    with pytest.raises(DeadlineError):  # the job creator may no longer dispute
        world.job_creator.dispute(deal)
    world.provider.claim_timeout(deal)
    assert world.deployer.deal_state(deal).status is DealStatus.TIMED_OUT_ACCEPTANCE
    assert world.provider.balance().free == DEPOSIT + PAYMENT
    assert world.job_creator.balance().free == DEPOSIT - PAYMENT


def test_timeout_mediators_silent_splits_the_price(world: World) -> None:
    # The job creator may hold the output it disputed: a silent consortium must not make the
    # job free, nor pay a provider in full whose result nobody upheld.
    deal = world.deal()
    world.open(deal)
    world.submit_result(deal, RESULT)
    world.job_creator.dispute(deal)
    with pytest.raises(DeadlineError):
        world.stranger.claim_timeout(deal)
    advance_chain_time(world.chain, MEDIATION_WINDOW_S + 1)
    world.stranger.claim_timeout(deal)
    assert world.deployer.deal_state(deal).status is DealStatus.TIMED_OUT_MEDIATION
    assert world.job_creator.balance().free == DEPOSIT - PAYMENT // 2
    assert world.provider.balance().free == DEPOSIT + PAYMENT // 2
    assert world.job_creator.balance().locked == world.provider.balance().locked == 0


def test_withdraw_everything_with_an_oversized_amount(world: World) -> None:
    world.provider.request_withdraw(2**256 - 1)
    advance_chain_time(world.chain, WITHDRAW_NOTICE_S)
    world.provider.withdraw()
    assert world.provider.balance() == world.provider.balance().__class__(0, 0, 0, 0)


def _dispute(world: World) -> object:
    deal = world.deal()
    world.open(deal)
    world.submit_result(deal, RESULT)
    world.job_creator.dispute(deal)
    state = world.deployer.deal_state(deal)
    assert (state.status, state.outcome) == (DealStatus.DISPUTED, None)
    return deal


def test_dispute_provider_right_pays_provider_and_mediators(world: World) -> None:
    deal = _dispute(world)
    signers = [world.mediators[i] for i in (0, 2, 4)]
    verdict, sigs = world.verdict_signatures(deal, Outcome.PROVIDER_CORRECT, RESULT, signers)
    world.stranger.resolve(deal, verdict, list(reversed(sigs)))  # any order: the client sorts

    share = FEE // 3
    assert world.provider.balance().free == DEPOSIT + PAYMENT
    assert world.job_creator.balance().free == DEPOSIT - PAYMENT - FEE  # the fee is held
    state = world.deployer.deal_state(deal)
    assert (state.status, state.unpaid_signers, state.signer_count) == (
        DealStatus.RESOLVED, 0b10101, 3
    )
    # The verdict is stored, and with it which hash it upheld (LilypadRequests delivers it).
    assert (state.outcome, state.result_prefix) == (Outcome.PROVIDER_CORRECT, RESULT[:20])
    with pytest.raises(DeadlineError, match="TooEarly"):  # late signatures may still come
        signers[1].claim_mediation_fee(deal)
    advance_chain_time(world.chain, MEDIATION_WINDOW_S + 1)
    world.stranger.claim_mediation_fee(deal)  # anyone; one transaction pays every signer
    assert [m.balance().free for m in signers] == [share + FEE % 3, share, share]
    with pytest.raises(ContractRevert, match="NoFeeOwed"):
        signers[0].claim_mediation_fee(deal)
    assert world.mediators[1].balance().free == 0  # did not sign: earns nothing
    with pytest.raises(AlreadySettled):
        world.stranger.resolve(deal, verdict, sigs)


def test_dispute_provider_wrong_slashes_collateral(world: World) -> None:
    deal = _dispute(world)
    signers = world.mediators[1:4]
    verdict, sigs = world.verdict_signatures(deal, Outcome.PROVIDER_WRONG, OTHER_RESULT, signers)
    world.job_creator.resolve(deal, verdict, sigs)
    assert world.provider.balance().free == DEPOSIT - COLLATERAL
    assert world.job_creator.balance().free == DEPOSIT + COLLATERAL - FEE
    state = world.deployer.deal_state(deal)
    assert (state.status, state.outcome) == (DealStatus.RESOLVED, Outcome.PROVIDER_WRONG)


def test_non_deterministic_verdict_job_creator_pays_fee_provider_keeps_collateral(
    world: World,
) -> None:
    deal = _dispute(world)
    verdict, sigs = world.verdict_signatures(
        deal, Outcome.NON_DETERMINISTIC, os.urandom(32), world.mediators
    )
    world.provider.resolve(deal, verdict, sigs)  # all five may sign
    assert world.provider.balance().free == DEPOSIT + PAYMENT
    assert world.job_creator.balance().free == DEPOSIT - PAYMENT - FEE
    state = world.deployer.deal_state(deal)
    assert (state.signer_count, state.outcome) == (5, Outcome.NON_DETERMINISTIC)


def test_verdict_must_match_the_recorded_result(world: World) -> None:
    deal = _dispute(world)
    verdict, sigs = world.verdict_signatures(
        deal, Outcome.PROVIDER_CORRECT, OTHER_RESULT, world.mediators[:3]
    )
    with pytest.raises(SignatureRejected, match="VerdictInconsistent"):
        world.stranger.resolve(deal, verdict, sigs)
    verdict, sigs = world.verdict_signatures(
        deal, Outcome.PROVIDER_WRONG, RESULT, world.mediators[:3]
    )
    with pytest.raises(SignatureRejected, match="VerdictInconsistent"):
        world.stranger.resolve(deal, verdict, sigs)


def test_only_the_job_creator_disputes(world: World) -> None:
    deal = world.deal()
    world.open(deal)
    with pytest.raises(ContractRevert, match="WrongStatus"):  # no result recorded yet
        world.job_creator.dispute(deal)
    world.submit_result(deal, RESULT)
    with pytest.raises(ContractRevert, match="NotJobCreator"):
        world.provider.dispute(deal)


def test_withdraw_during_notice_cannot_take_locked_funds(world: World) -> None:
    world.job_creator.request_withdraw(DEPOSIT)
    deal = world.deal()
    world.open(deal)  # the announced funds stay usable during the notice
    with pytest.raises(DeadlineError, match="WithdrawNotReady"):
        world.job_creator.withdraw()
    advance_chain_time(world.chain, WITHDRAW_NOTICE_S)
    wallet_before = world.chain.balance_of(world.job_creator.account.address)
    receipt = world.job_creator.withdraw()
    taken = DEPOSIT - PAYMENT - FEE
    events = world.job_creator.decode_events(receipt)
    assert ("Withdrawn", {"account": world.job_creator.account.address, "amount": taken}) in events
    balance = world.job_creator.balance()
    assert (balance.free, balance.locked, balance.withdraw_requested) == (0, PAYMENT + FEE, 0)
    assert world.chain.balance_of(world.job_creator.account.address) > wallet_before
    # the locked funds still settle the deal
    signature = world.job_creator.sign(world.job_creator.acceptance(deal, RESULT))
    world.provider.settle(deal, RESULT, signature)
    assert world.provider.balance().free == DEPOSIT + PAYMENT
    assert world.job_creator.balance().free == FEE


def test_open_fails_without_free_funds(world: World) -> None:
    poor = world.deployer.with_account(world.spare[1])
    deal = world.deal(job_creator=poor.account.address)
    with pytest.raises(ContractRevert, match="InsufficientFunds"):
        world.job_creator.open_deal(deal, poor.sign(deal), world.provider.sign(deal))


def test_mediator_exit_stops_its_votes_and_returns_stake(world: World) -> None:
    deal = _dispute(world)
    leaving = world.mediators[0]
    leaving.request_mediator_exit()
    assert not world.deployer.is_registered_mediator(leaving.account.address)
    verdict, sigs = world.verdict_signatures(
        deal, Outcome.PROVIDER_CORRECT, RESULT, world.mediators[:3]
    )
    with pytest.raises(SignatureRejected, match="UnregisteredMediator"):
        world.stranger.resolve(deal, verdict, sigs)
    with pytest.raises(DeadlineError):
        leaving.complete_mediator_exit()
    advance_chain_time(world.chain, WITHDRAW_NOTICE_S)
    leaving.complete_mediator_exit()
    assert leaving.balance().free == MIN_STAKE
    verdict, sigs = world.verdict_signatures(
        deal, Outcome.PROVIDER_CORRECT, RESULT, world.mediators[1:4]
    )
    world.stranger.resolve(deal, verdict, sigs)
    assert world.deployer.deal_state(deal).status is DealStatus.RESOLVED


def test_deadlines_are_relative_where_documented(world: World) -> None:
    deal = world.deal()
    world.open(deal)
    advance_chain_time(world.chain, RESULT_WINDOW_S - 100)
    world.submit_result(deal, RESULT)  # late but in time: the full acceptance window follows
    advance_chain_time(world.chain, ACCEPTANCE_WINDOW_S - 100)
    world.job_creator.dispute(deal)
    assert world.deployer.deal_state(deal).status is DealStatus.DISPUTED


async def test_a_provider_learns_what_its_batch_settled_from_the_receipt(world: World) -> None:
    """The provider's settlement names the deals its transaction settled, so it reads the
    status of the others only: one already settled is not among them."""
    identity = Identity(bytes(world.provider.account.key), b"\x01" * 32)
    provider = DealChain(world.provider, identity)
    deals = [world.deal() for _ in range(3)]
    for deal in deals:
        world.open(deal)
    items = [
        SettlementItem(d, RESULT, world.job_creator.sign(world.job_creator.acceptance(d, RESULT)))
        for d in deals
    ]
    world.provider.settle(items[0].deal, RESULT, items[0].job_creator_signature)
    sent, settled = await provider.settle_batch(items)
    assert (sent, settled) == (1, frozenset(world.provider.deal_id(d) for d in deals[1:]))
    assert await provider.settle_batch(items) == (0, frozenset())
