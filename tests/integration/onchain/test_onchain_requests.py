"""LilypadRequests on anvil, the honest paths and the requester's policy: an attested request
delivered inline or by CID, the deal checks at posting, policy validation, hostile callbacks.
(Attacks: test_requests_attacks.py.)"""

from __future__ import annotations

import hashlib

import pytest
from eth_utils import keccak
from multiformats import CID
from onchain_world import (
    BOND,
    CALLBACK_GAS,
    MAX_PRICE,
    MODULE,
    PAYMENT,
    OnchainWorld,
    output_tarball,
    sha256,
)

from lilypad_p2p.chain import (
    ContractClient,
    ContractRevert,
    RequestMode,
    RequestStatus,
    TransactionReverted,
    TrustPolicy,
    deploy_contract,
    result_cid_bytes,
)
from lilypad_p2p.exec import result_cid


def test_example_client_gets_the_answer_and_money_follows_the_deal(world: OnchainWorld) -> None:
    request_id = world.ask("hello")
    request = world.requests.request(request_id)
    assert (request.status, request.escrow, request.requester) == (
        RequestStatus.OPEN, MAX_PRICE, world.example.address)
    _, tarball = world.serve_attested(request_id, "HELLO")
    assert world.requests.request(request_id).status is RequestStatus.UPHELD

    receipt = world.requests.deliver(request_id, tarball)

    delivered = world.requests.delivered(receipt)
    assert (delivered["callbackSucceeded"], delivered["paid"]) == (True, PAYMENT)
    assert delivered["resultHash"] == sha256(tarball)
    assert world.example.read("answers", request_id) == "HELLO"
    assert world.requests.request(request_id).status is RequestStatus.DELIVERED
    assert world.requests.owed(world.bridge.account.address) == PAYMENT + BOND
    assert world.requests.owed(world.example.address) == MAX_PRICE - PAYMENT


@pytest.mark.parametrize(("size", "by_cid"), [(1024, False), (1025, True)])
def test_outputs_over_a_kibibyte_reach_the_callback_as_their_cid(
    world: OnchainWorld, size: int, by_cid: bool
) -> None:
    request_id = world.ask("sized")
    _, tarball = world.serve_attested(request_id, "B" * size)
    delivered = world.requests.delivered(world.requests.deliver(request_id, tarball))
    assert (delivered["outputIsCid"], delivered["callbackSucceeded"]) == (by_cid, True)
    if not by_cid:
        assert world.example.read("answers", request_id) == "B" * size
        return
    cid = world.example.read("answerCids", request_id)
    assert cid == result_cid_bytes(sha256(tarball))
    assert bytes(CID.decode(result_cid(tarball))) == cid  # the CID the node prints


def test_only_the_claimant_delivers_by_cid_without_the_tarball(world: OnchainWorld) -> None:
    request_id = world.ask("huge")
    _, tarball = world.serve_attested(request_id, "H" * 4096)
    with pytest.raises(ContractRevert) as stranger:
        world.requests.deliver(request_id, b"")
    assert stranger.value.error == "NotClaimant"
    with pytest.raises(ContractRevert) as forged:
        world.requests.deliver(request_id, output_tarball("FORGED"))
    assert forged.value.error == "ResultMismatch"
    receipt = world.bridge_requests.deliver(request_id, b"")
    assert world.requests.delivered(receipt)["outputIsCid"] is True
    assert world.example.read("answerCids", request_id) == result_cid_bytes(sha256(tarball))


def test_a_post_needs_the_claimants_paid_deal_for_this_request(world: OnchainWorld) -> None:
    request_id = world.ask("y")
    other_id = world.ask("z")
    world.bridge_requests.claim(request_id, BOND)
    tarball = output_tarball("Y")
    unsettled = world.deal_for(request_id)
    world.bridge.open_deal(unsettled, world.bridge.sign(unsettled),
                           world.provider.sign(unsettled))
    with pytest.raises(ContractRevert) as unpaid:
        world.bridge_requests.post_result(request_id, unsettled, sha256(tarball))
    assert unpaid.value.error == "DealNotPaid"
    for wrong in (world.deal_for(other_id), world.deal_for(request_id, module_hash=keccak(
            text="another module")), world.deal_for(request_id, payment=MAX_PRICE + 1)):
        with pytest.raises(ContractRevert) as refused:
            world.bridge_requests.post_result(request_id, wrong, sha256(tarball))
        assert refused.value.error in {"WrongJob", "PriceAboveEscrow"}
    with pytest.raises(ContractRevert) as stranger:
        world.requests.post_result(request_id, unsettled, sha256(tarball))
    assert stranger.value.error == "NotClaimant"


def test_policies_are_checked_when_asked(world: OnchainWorld) -> None:
    members = world.policy.mediators
    bad = [
        (list(reversed(members)), 2, 0, BOND, 0),  # not ascending
        ([members[0], members[0]], 1, 0, BOND, 0),  # duplicate
        (list(members), 4, 0, BOND, 0),  # k > n
        (list(members), 0, 0, BOND, 0),
        ([], 1, 0, BOND, 0),
        (list(members), 2, 1, BOND, 0),  # optimistic without a window
        (list(members), 2, 1, 0, 60),  # optimistic without a bond
        (list(members), 2, 0, BOND, 60),  # attested with a window
    ]
    bad_policy = keccak(text="BadPolicy(string)")[:4].hex()
    for policy in bad:
        # The example client passes LilypadRequests' revert through (its error, not ours).
        with pytest.raises(TransactionReverted) as refused:
            world.example.send("ask", MODULE, b"{}", world.chain.now() + 600, policy,
                               value=MAX_PRICE)
        assert bad_policy in str(refused.value), policy
    with pytest.raises(ValueError):
        TrustPolicy(members, 2, RequestMode.OPTIMISTIC, BOND, 0)


@pytest.mark.parametrize("mode", [0, 1, 2], ids=["reverts", "burns-gas", "return-bomb"])
def test_hostile_callback_neither_blocks_delivery_nor_locks_funds(
    world: OnchainWorld, mode: int
) -> None:
    hostile = ContractClient(
        world.chain, "HostileResultReceiver",
        deploy_contract(world.chain, world.example.account, "HostileResultReceiver",
                        world.requests.address, mode),
        world.example.account,
    )
    receipt = hostile.send("ask", MODULE, b"{}", world.chain.now() + 3_600, CALLBACK_GAS,
                           world.policy.as_abi(), value=MAX_PRICE)
    (requested,) = world.requests.requested_in(receipt)
    _, tarball = world.serve_attested(requested.request_id, "IGNORED")
    delivery = world.requests.deliver(requested.request_id, tarball)
    assert world.requests.delivered(delivery)["callbackSucceeded"] is False
    assert delivery.gas_used < 400_000
    assert world.requests.owed(world.bridge.account.address) == PAYMENT + BOND
    assert world.requests.owed(hostile.address) == MAX_PRICE - PAYMENT


def test_starving_the_callback_of_gas_reverts_the_delivery(world: OnchainWorld) -> None:
    request_id = world.ask("starve")
    _, tarball = world.serve_attested(request_id, "STARVE")
    # Enough for the checks but not the callback's allowance: the contract must revert rather
    # than record a failed callback.
    with pytest.raises(TransactionReverted):
        world.requests.deliver(request_id, tarball, gas=150_000)
    assert world.requests.request(request_id).status is RequestStatus.UPHELD


def test_a_request_id_binds_the_policy(world: OnchainWorld) -> None:
    first = world.ask("same")
    second = world.ask("same", policy=world.optimistic)
    assert first != second
    assert world.requests.request(second).mode is RequestMode.OPTIMISTIC
    assert hashlib.sha256(b"").digest() != world.requests.request(second).consortium_hash
