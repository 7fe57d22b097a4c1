"""LilypadRequests on anvil: request, deliver after a settled or mediated deal (inline or by
CID), refunds, hostile callbacks, cross-chain replay."""

from __future__ import annotations

import pytest
from onchain_world import (
    CALLBACK_GAS,
    MAX_PRICE,
    MODULE,
    PAYMENT,
    OnchainWorld,
    output_tarball,
    sha256,
)

from lilypad_p2p.chain import (
    Chain,
    ContractClient,
    ContractRevert,
    DealStatus,
    Outcome,
    RequestStatus,
    TransactionReverted,
    deploy_contract,
    result_cid_bytes,
)
from lilypad_p2p.exec import result_cid
from lilypad_p2p.testing import advance_chain_time, chain_test_accounts


def test_example_client_gets_the_answer_and_money_follows_the_deal(world: OnchainWorld) -> None:
    request_id = world.ask("hello")
    request = world.requests.request(request_id)
    assert request.status is RequestStatus.PENDING
    assert request.escrow == MAX_PRICE
    assert request.requester == world.example.address
    tarball = output_tarball("HELLO")
    deal = world.deal_for(request_id)
    commitment, acceptance = world.settle(deal, tarball)

    receipt = world.requests.deliver(request_id, deal, tarball, commitment, acceptance)

    delivered = world.requests.delivered(receipt)
    assert delivered["callbackSucceeded"] is True
    assert delivered["resultHash"] == sha256(tarball)
    assert delivered["paid"] == PAYMENT
    assert world.example.read("answers", request_id) == "HELLO"
    assert world.example.read("answered", request_id) is True
    assert world.requests.request(request_id).status is RequestStatus.DELIVERED
    assert world.requests.owed(world.bridge.account.address) == PAYMENT
    assert world.requests.owed(world.example.address) == MAX_PRICE - PAYMENT
    # The bridge paid the provider on the settlement contract exactly what it is reimbursed.
    assert world.bridge.balance().free == 50 * 10**18 - PAYMENT
    bridge_wallet = world.chain.balance_of(world.bridge.account.address)
    withdraw = world.requests.with_account(world.bridge.account).withdraw()
    assert world.chain.balance_of(world.bridge.account.address) > bridge_wallet
    assert withdraw.gas_used > 0
    assert world.requests.owed(world.bridge.account.address) == 0


def test_delivery_refused_before_settlement_and_twice(world: OnchainWorld) -> None:
    request_id = world.ask("x")
    tarball = output_tarball("X")
    deal = world.deal_for(request_id)
    commitment = world.open_and_commit(deal, tarball)
    acceptance = world.bridge.sign(world.bridge.acceptance(deal, sha256(tarball)))
    with pytest.raises(ContractRevert) as refused:
        world.requests.deliver(request_id, deal, tarball, commitment, acceptance)
    assert refused.value.error == "DealNotSettled"
    world.bridge.settle(deal, sha256(tarball), acceptance)
    world.requests.deliver(request_id, deal, tarball, commitment, acceptance)
    with pytest.raises(ContractRevert) as twice:
        world.requests.deliver(request_id, deal, tarball, commitment, acceptance)
    assert twice.value.error == "NotPending"


def test_delivery_needs_the_settled_output_and_a_deal_made_for_the_request(
    world: OnchainWorld,
) -> None:
    request_id = world.ask("y")
    other_id = world.ask("z")
    tarball = output_tarball("Y")
    deal = world.deal_for(request_id)
    commitment, acceptance = world.settle(deal, tarball)
    with pytest.raises(ContractRevert) as forged:
        world.requests.deliver(request_id, deal, output_tarball("FORGED"), commitment, acceptance)
    assert forged.value.error == "WrongSigner"
    with pytest.raises(ContractRevert) as other:
        world.requests.deliver(other_id, deal, tarball, commitment, acceptance)
    assert other.value.error == "WrongJob"
    wrong_module = world.deal_for(other_id, module_hash=sha256(b"another module"))
    with pytest.raises(ContractRevert) as module:
        world.requests.deliver(other_id, wrong_module, tarball, commitment, acceptance)
    assert module.value.error == "WrongJob"


def test_price_above_escrow_is_refused(world: OnchainWorld) -> None:
    request_id = world.ask("cheap", value=PAYMENT - 1)
    tarball = output_tarball("CHEAP")
    deal = world.deal_for(request_id)
    commitment, acceptance = world.settle(deal, tarball)
    with pytest.raises(ContractRevert) as refused:
        world.requests.deliver(request_id, deal, tarball, commitment, acceptance)
    assert refused.value.error == "PriceAboveEscrow"


def test_output_larger_than_a_kibibyte_is_delivered_by_cid(world: OnchainWorld) -> None:
    request_id = world.ask("big")
    tarball = output_tarball("B" * 1025)
    deal = world.deal_for(request_id)
    commitment, acceptance = world.settle(deal, tarball)
    receipt = world.requests.deliver(request_id, deal, tarball, commitment, acceptance)
    delivered = world.requests.delivered(receipt)
    assert (delivered["outputIsCid"], delivered["callbackSucceeded"]) == (True, True)
    cid = world.example.read("answerCids", request_id)
    assert cid == result_cid_bytes(sha256(tarball))
    # The same CID the node prints and stores the result under, in binary form.
    from multiformats import CID

    assert bytes(CID.decode(result_cid(tarball))) == cid
    assert world.example.read("answers", request_id) == ""
    assert world.requests.owed(world.bridge.account.address) == PAYMENT


def test_output_of_exactly_a_kibibyte_is_delivered_inline(world: OnchainWorld) -> None:
    request_id = world.ask("edge")
    tarball = output_tarball("E" * 1024)
    deal = world.deal_for(request_id)
    commitment, acceptance = world.settle(deal, tarball)
    receipt = world.requests.deliver(request_id, deal, tarball, commitment, acceptance)
    assert world.requests.delivered(receipt)["outputIsCid"] is False
    assert world.example.read("answers", request_id) == "E" * 1024


def test_only_the_job_creator_delivers_by_cid_without_the_tarball(world: OnchainWorld) -> None:
    request_id = world.ask("huge")
    tarball = output_tarball("H" * 4096)
    deal = world.deal_for(request_id)
    commitment, acceptance = world.settle(deal, tarball)
    with pytest.raises(ContractRevert) as stranger:
        world.requests.deliver_cid(request_id, deal, sha256(tarball), commitment, acceptance)
    assert stranger.value.error == "NotJobCreator"
    as_job_creator = world.requests.with_account(world.bridge.account)
    with pytest.raises(ContractRevert) as forged:
        as_job_creator.deliver_cid(request_id, deal, sha256(b"other"), commitment, acceptance)
    assert forged.value.error == "WrongSigner"
    receipt = as_job_creator.deliver_cid(request_id, deal, sha256(tarball), commitment,
                                         acceptance)
    assert world.requests.delivered(receipt)["outputIsCid"] is True
    assert world.example.read("answerCids", request_id) == result_cid_bytes(sha256(tarball))


def test_deal_resolved_provider_correct_delivers(world: OnchainWorld) -> None:
    request_id = world.ask("mediated")
    tarball = output_tarball("MEDIATED")
    deal = world.deal_for(request_id)
    commitment = world.open_and_commit(deal, tarball)
    world.bridge.dispute(deal)
    with pytest.raises(ContractRevert) as disputed:
        world.requests.deliver(request_id, deal, tarball, commitment, b"")
    assert disputed.value.error == "DealNotSettled"
    world.resolve_disputed(deal, Outcome.PROVIDER_CORRECT, sha256(tarball))
    with pytest.raises(ContractRevert) as forged:  # the commitment binds the full hash
        world.requests.deliver(request_id, deal, output_tarball("FORGED"), commitment, b"")
    assert forged.value.error == "WrongSigner"
    with pytest.raises(ContractRevert) as not_failed:
        world.requests.refund_failed(request_id, deal)
    assert not_failed.value.error == "DealNotFailed"

    receipt = world.requests.deliver(request_id, deal, tarball, commitment, b"")

    assert world.requests.delivered(receipt)["callbackSucceeded"] is True
    assert world.example.read("answers", request_id) == "MEDIATED"
    assert world.requests.owed(world.bridge.account.address) == PAYMENT
    assert world.requests.owed(world.example.address) == MAX_PRICE - PAYMENT


@pytest.mark.parametrize(
    ("outcome", "reimbursed"),
    [(Outcome.PROVIDER_WRONG, 0), (Outcome.NON_DETERMINISTIC, PAYMENT)],
    ids=["provider-wrong", "non-deterministic"],
)
def test_failed_verdict_delivers_nothing_and_refunds_at_once(
    world: OnchainWorld, outcome: Outcome, reimbursed: int
) -> None:
    request_id = world.ask("contested")
    tarball = output_tarball("CONTESTED")
    deal = world.deal_for(request_id)
    commitment = world.open_and_commit(deal, tarball)
    world.bridge.dispute(deal)
    verdict_hash = sha256(b"the mediators' output") if outcome is Outcome.PROVIDER_WRONG \
        else sha256(tarball)
    world.resolve_disputed(deal, outcome, verdict_hash)
    with pytest.raises(ContractRevert) as refused:
        world.requests.deliver(request_id, deal, tarball, commitment, b"")
    assert refused.value.error == "DealNotSettled"

    receipt = world.requests.refund_failed(request_id, deal)

    (failed,) = world.requests.events(receipt, "RequestFailed")
    assert (failed["outcome"], failed["reimbursed"]) == (outcome, reimbursed)
    assert world.requests.request(request_id).status is RequestStatus.REFUNDED
    assert world.requests.owed(world.bridge.account.address) == reimbursed
    assert world.requests.owed(world.example.address) == MAX_PRICE - reimbursed
    assert world.example.read("answered", request_id) is False
    with pytest.raises(ContractRevert) as twice:
        world.requests.refund_failed(request_id, deal)
    assert twice.value.error == "NotPending"


def test_refund_failed_needs_a_deal_made_for_the_request(world: OnchainWorld) -> None:
    request_id = world.ask("mine")
    other_id = world.ask("other")
    tarball = output_tarball("MINE")
    deal = world.deal_for(request_id)
    world.open_and_commit(deal, tarball)
    world.bridge.dispute(deal)
    world.resolve_disputed(deal, Outcome.PROVIDER_WRONG, sha256(b"else"))
    with pytest.raises(ContractRevert) as other:
        world.requests.refund_failed(other_id, deal)
    assert other.value.error == "WrongJob"


def test_provider_paid_by_acceptance_timeout_still_delivers(world: OnchainWorld) -> None:
    request_id = world.ask("late")
    tarball = output_tarball("LATE")
    deal = world.deal_for(request_id)
    commitment = world.open_and_commit(deal, tarball)
    advance_chain_time(world.chain, deal.acceptance_window + 1)
    world.provider.claim_timeout(deal)
    assert world.settlement.deal_state(deal).status is DealStatus.TIMED_OUT_ACCEPTANCE
    receipt = world.requests.deliver(request_id, deal, tarball, commitment, b"")
    assert world.requests.delivered(receipt)["callbackSucceeded"] is True
    assert world.example.read("answers", request_id) == "LATE"


def test_undelivered_request_is_refunded_after_its_deadline(world: OnchainWorld) -> None:
    request_id = world.ask("nobody", window_s=100)
    with pytest.raises(ContractRevert) as early:
        world.requests.refund(request_id)
    assert early.value.error == "TooEarly"
    advance_chain_time(world.chain, 101)
    world.requests.refund(request_id)
    assert world.requests.request(request_id).status is RequestStatus.REFUNDED
    assert world.requests.owed(world.example.address) == MAX_PRICE
    tarball = output_tarball("TOO LATE")
    deal = world.deal_for(request_id)
    commitment, acceptance = world.settle(deal, tarball)
    with pytest.raises(ContractRevert) as refunded:
        world.requests.deliver(request_id, deal, tarball, commitment, acceptance)
    assert refunded.value.error == "NotPending"


@pytest.mark.parametrize("mode", [0, 1, 2], ids=["reverts", "burns-gas", "return-bomb"])
def test_hostile_callback_neither_blocks_settlement_nor_locks_funds(
    world: OnchainWorld, mode: int
) -> None:
    hostile = ContractClient(
        world.chain, "HostileResultReceiver",
        deploy_contract(world.chain, world.example.account, "HostileResultReceiver",
                        world.requests.address, mode),
        world.example.account,
    )
    receipt = hostile.send("ask", MODULE, b"{}", world.chain.now() + 3_600, CALLBACK_GAS,
                           value=MAX_PRICE)
    (requested,) = world.requests.requested_in(receipt)
    tarball = output_tarball("IGNORED")
    deal = world.deal_for(requested.request_id)
    commitment, acceptance = world.settle(deal, tarball)
    provider_free = world.provider.balance().free
    delivery = world.requests.deliver(requested.request_id, deal, tarball, commitment, acceptance)
    assert world.requests.delivered(delivery)["callbackSucceeded"] is False
    assert delivery.gas_used < 400_000
    assert world.provider.balance().free == provider_free  # paid at settle, untouched
    assert world.requests.owed(world.bridge.account.address) == PAYMENT
    assert world.requests.owed(hostile.address) == MAX_PRICE - PAYMENT


def test_starving_the_callback_of_gas_reverts_the_delivery(world: OnchainWorld) -> None:
    request_id = world.ask("starve")
    tarball = output_tarball("STARVE")
    deal = world.deal_for(request_id)
    commitment, acceptance = world.settle(deal, tarball)
    # 150k covers the checks but not the callback's 200k: the contract must revert rather
    # than record a failed callback. (The revert reason cannot be replayed: eth_call has ample
    # gas.)
    with pytest.raises(TransactionReverted):
        world.requests.deliver(request_id, deal, tarball, commitment, acceptance, gas=150_000)
    assert world.requests.request(request_id).status is RequestStatus.PENDING


def test_signatures_replayed_on_another_chain_revert(anvil_a: Chain, anvil_b: Chain) -> None:
    # Same deployer at the same nonce on both chains: identical contract addresses, so only the
    # chain id tells the two EIP-712 domains apart.
    deployer = chain_test_accounts()[0].address
    nonce = max(chain.rpc(lambda c=chain: c.w3.eth.get_transaction_count(deployer))
                for chain in (anvil_a, anvil_b))
    for chain in (anvil_a, anvil_b):
        chain.rpc(lambda c=chain: c.w3.provider.make_request(  # type: ignore[attr-defined]
            "anvil_setNonce", [deployer, hex(nonce)]))
        chain.resync_nonces()
    home = OnchainWorld.deploy(anvil_a)
    away = OnchainWorld.deploy(anvil_b)
    assert home.settlement.address == away.settlement.address
    assert home.requests.address == away.requests.address
    request_id = home.ask("home")
    tarball = output_tarball("HOME")
    deal = home.deal_for(request_id)
    commitment, acceptance = home.settle(deal, tarball)
    # ...yet the deal's signatures open nothing on the other chain,
    with pytest.raises(ContractRevert) as reopened:
        away.bridge.open_deal(deal, home.bridge.sign(deal), home.provider.sign(deal))
    assert reopened.value.error == "WrongSigner"
    # and the home chain's settled deal delivers nothing there.
    away_request = away.ask("away")
    away_deal = away.deal_for(away_request)
    with pytest.raises(ContractRevert) as replayed:
        away.requests.deliver(away_request, away_deal, tarball, commitment, acceptance)
    assert replayed.value.error in {"WrongSigner", "DealNotSettled"}
    with pytest.raises(ContractRevert) as wrong_request:
        away.requests.deliver(request_id, deal, tarball, commitment, acceptance)
    assert wrong_request.value.error == "NotPending"
