"""LilypadRequests attacked as a hostile bridge would: its own keys and EIP-712 signatures
(attacker.py), against the deployed contracts on anvil. Every test ends with a conservation
check over both contracts and each party's gain or loss.

The attacks: a self-deal with a made-up output; front-running an honest bridge's claim or its
delivery; the settlement verdict path with the attacker's own registered mediator; a cheating
optimistic result; racing the deadline. What the requester trusts is k of its n mediators, and
nothing an attacker controls reaches its callback without them.
"""

from __future__ import annotations

from typing import Any

import pytest
from attacker import Attacker, Ledger
from eth_utils import keccak
from onchain_world import (
    BOND,
    CHALLENGE_WINDOW_S,
    ETH,
    MAX_PRICE,
    MODULE,
    PAYMENT,
    REQUEST_WINDOW_S,
    OnchainWorld,
    output_tarball,
    sha256,
)

from lilypad_p2p.chain import ContractClient, ContractRevert, RequestStatus, TransactionReverted
from lilypad_p2p.testing import advance_chain_time, chain_test_accounts

PROVIDER_WRONG, NON_DETERMINISTIC = 2, 3


@pytest.fixture
def attacker(world: OnchainWorld) -> Attacker:
    job_creator, provider, mediator = chain_test_accounts()[9:12]
    hostile = Attacker(world.chain, world.settlement.address, world.requests.address,
                       job_creator, provider, mediator)
    hostile.settlement(job_creator).send("deposit", value=10 * ETH)
    hostile.settlement(mediator).send("registerMediator", value=ETH)  # its stake comes back
    return hostile


def ledger(world: OnchainWorld, attacker: Attacker) -> Ledger:
    """Books over every party, opened before the test's requests are made."""
    return Ledger(world.chain, ContractClient(world.chain, "LilypadSettlement",
                                              world.settlement.address),
                  world.requests, {
                      "requester": world.example.address,
                      "requester_owner": world.example.account.address,  # type: ignore[union-attr]
                      "bridge": world.bridge.account.address,  # type: ignore[union-attr]
                      "provider": world.provider.account.address,  # type: ignore[union-attr]
                      "stranger": world.requests.account.address,  # type: ignore[union-attr]
                      "attacker": attacker.job_creator.address,
                      "attacker_provider": attacker.provider.address,
                      "attacker_mediator": attacker.mediator.address,
                      "challenger": chain_test_accounts()[12].address,
                      **{f"m{i}": m.account.address  # type: ignore[union-attr]
                         for i, m in enumerate(world.consortium)},
                  })


def ask(world: OnchainWorld, books: Ledger, text: str, **options: Any) -> bytes:
    request_id = world.ask(text, **options)
    books.request_ids.append(request_id)
    return request_id


def requester_net(changes: dict[str, int]) -> int:
    """The requester contract and its owner's wallet, which funds its requests."""
    return changes["requester"] + changes["requester_owner"]


def attacker_net(changes: dict[str, int]) -> int:
    return changes["attacker"] + changes["attacker_provider"] + changes["attacker_mediator"]


def test_self_deal_with_a_made_up_output_takes_nothing(
    world: OnchainWorld, attacker: Attacker
) -> None:
    books = ledger(world, attacker)
    request_id = ask(world, books, "secret")
    fake = output_tarball("ATTACKER WAS HERE")
    requests = attacker.requests(attacker.job_creator)
    requests.claim(request_id, BOND)
    deal = attacker.self_deal(request_id, MODULE, payment=MAX_PRICE, now=world.chain.now())
    attacker.open_and_commit(deal, sha256(fake))
    attacker.settle(deal, sha256(fake))
    requests.send("postResult", request_id, deal.terms, deal.job_spec_hash, sha256(fake))

    for tarball in (fake, b""):  # the tarball, or its CID
        with pytest.raises(ContractRevert) as unbacked:
            requests.deliver(request_id, tarball)
        assert unbacked.value.error == "NotBacked"
    with pytest.raises(ContractRevert) as own_vote:  # its registered mediator is not trusted
        attacker.requests(attacker.mediator).vote(request_id, world.policy, sha256(fake))
    assert own_vote.value.error == "NotConsortium"
    # The requester's consortium runs the job and gets another output: overturned.
    world.attest(request_id, output_tarball("SECRET"))
    request = world.requests.request(request_id)
    assert (request.status, request.round) == (RequestStatus.OPEN, 1)
    for tarball in (fake, b""):
        with pytest.raises(ContractRevert) as overturned:
            requests.deliver(request_id, tarball)
        assert overturned.value.error == "NotBacked"
    assert world.example.read("answered", request_id) is False

    advance_chain_time(world.chain, REQUEST_WINDOW_S + 1)
    world.requests.refund(request_id)
    changes = books.check()
    assert world.requests.owed(world.example.address) == MAX_PRICE + BOND
    assert attacker_net(changes) == -BOND
    assert requester_net(changes) == BOND


def test_self_deal_cannot_take_a_request_an_honest_bridge_claimed(
    world: OnchainWorld, attacker: Attacker
) -> None:
    books = ledger(world, attacker)
    request_id = ask(world, books, "mine")
    _, tarball = world.serve(request_id, "MINE")
    own = attacker.self_deal(request_id, MODULE, payment=MAX_PRICE, now=world.chain.now())
    attacker.open_and_commit(own, sha256(tarball))
    attacker.settle(own, sha256(tarball))
    requests = attacker.requests(attacker.job_creator)
    with pytest.raises(ContractRevert) as claim:
        requests.claim(request_id, BOND)
    assert claim.value.error == "WrongStatus"
    with pytest.raises(ContractRevert) as post:  # the true output, its own deal: not its claim
        requests.send("postResult", request_id, own.terms, own.job_spec_hash, sha256(tarball))
    assert post.value.error == "WrongStatus"
    world.attest(request_id, tarball)
    with pytest.raises(ContractRevert) as by_cid:  # only the claimant chooses the CID
        requests.deliver(request_id, b"")
    assert by_cid.value.error == "NotClaimant"

    world.bridge_requests.deliver(request_id, tarball)
    changes = books.check()
    assert world.example.read("answers", request_id) == "MINE"
    assert changes["bridge"] == 0  # paid its provider PAYMENT, reimbursed PAYMENT, bond back
    assert requester_net(changes) == -PAYMENT
    assert attacker_net(changes) == 0  # it paid itself


def test_front_running_an_honest_delivery_pays_the_honest_bridge(
    world: OnchainWorld, attacker: Attacker
) -> None:
    books = ledger(world, attacker)
    request_id = ask(world, books, "race")
    _, tarball = world.serve_attested(request_id, "RACE")
    # The attacker copies the bridge's delivery from the mempool and gets it mined first.
    attacker.requests(attacker.job_creator).deliver(request_id, tarball)
    with pytest.raises(ContractRevert) as second:
        world.bridge_requests.deliver(request_id, tarball)
    assert second.value.error == "NotBacked"

    changes = books.check()
    assert world.example.read("answers", request_id) == "RACE"
    assert world.requests.owed(world.bridge.account.address) == PAYMENT + BOND
    assert changes["bridge"] == 0
    assert attacker_net(changes) == 0  # gas aside, it moved nothing


def test_claiming_first_costs_the_attacker_its_bond_and_the_honest_bridge_nothing(
    world: OnchainWorld, attacker: Attacker
) -> None:
    books = ledger(world, attacker)
    request_id = ask(world, books, "grief", window_s=600)
    attacker.requests(attacker.job_creator).claim(request_id, BOND)
    with pytest.raises(ContractRevert) as late:  # the honest bridge funds no deal
        world.bridge_requests.claim(request_id, BOND)
    assert late.value.error == "WrongStatus"
    with pytest.raises(ContractRevert) as early:
        world.requests.refund(request_id)
    assert early.value.error == "TooEarly"
    advance_chain_time(world.chain, 601)
    world.requests.refund(request_id)
    changes = books.check()
    assert changes["bridge"] == 0
    assert attacker_net(changes) == -BOND
    assert requester_net(changes) == BOND


@pytest.mark.parametrize("outcome", [PROVIDER_WRONG, NON_DETERMINISTIC],
                         ids=["provider-wrong", "non-deterministic"])
def test_verdicts_of_the_attackers_own_mediator_neither_pay_nor_cancel(
    world: OnchainWorld, attacker: Attacker, outcome: int
) -> None:
    books = ledger(world, attacker)
    request_id = ask(world, books, "verdict")
    fake = output_tarball("RULED")
    deal = attacker.self_deal(request_id, MODULE, payment=MAX_PRICE, now=world.chain.now())
    attacker.open_and_commit(deal, sha256(fake))
    ruled = sha256(b"another") if outcome == PROVIDER_WRONG else sha256(fake)
    attacker.rule_own_deal(deal, outcome, ruled)
    assert world.settlement.deal_state(deal.deal_id).status.name == "RESOLVED"
    # The old verdict door (refundFailed) is gone: its selector reverts.
    selector = keccak(text="refundFailed(bytes32,(address,address,uint128,uint128,uint128,"
                           "bytes32,uint8,uint64,uint64,uint64,bytes32),bytes32)")[:4]
    with pytest.raises(TransactionReverted):
        world.chain.transact(attacker.job_creator, world.requests.address,
                             selector + request_id + bytes(32 * 12))
    assert world.requests.request(request_id).status is RequestStatus.OPEN
    requests = attacker.requests(attacker.job_creator)
    requests.claim(request_id, BOND)
    with pytest.raises(ContractRevert) as unbacked:
        requests.deliver(request_id, fake)
    assert unbacked.value.error == "NotBacked"
    advance_chain_time(world.chain, REQUEST_WINDOW_S + 1)
    world.requests.refund(request_id)
    changes = books.check()
    assert attacker_net(changes) == -BOND
    assert requester_net(changes) == BOND
    assert world.example.read("answered", request_id) is False


def test_a_false_optimistic_result_is_overturned_and_pays_the_challenger(
    world: OnchainWorld, attacker: Attacker
) -> None:
    books = ledger(world, attacker)
    request_id = ask(world, books, "optimistic", policy=world.optimistic)
    fake = output_tarball("FAKE")
    requests = attacker.requests(attacker.job_creator)
    requests.claim(request_id, BOND)
    deal = attacker.self_deal(request_id, MODULE, payment=MAX_PRICE, now=world.chain.now())
    attacker.open_and_commit(deal, sha256(fake))
    attacker.settle(deal, sha256(fake))
    requests.send("postResult", request_id, deal.terms, deal.job_spec_hash, sha256(fake))
    with pytest.raises(ContractRevert) as early:
        requests.deliver(request_id, fake)
    assert early.value.error == "NotBacked"
    with pytest.raises(ContractRevert) as own_vote:
        attacker.requests(attacker.mediator).vote(request_id, world.optimistic, sha256(fake))
    assert own_vote.value.error in {"NotConsortium", "WrongStatus"}

    challenger = world.requests.with_account(chain_test_accounts()[12])
    challenger.challenge(request_id, BOND)
    truth = output_tarball("OPTIMISTIC")
    world.consortium[0].vote(request_id, world.optimistic, sha256(truth))
    with pytest.raises(ContractRevert) as attacker_votes:
        attacker.requests(attacker.mediator).vote(request_id, world.optimistic, sha256(fake))
    assert attacker_votes.value.error == "NotConsortium"
    world.consortium[1].vote(request_id, world.optimistic, sha256(truth))

    request = world.requests.request(request_id)
    assert (request.status, request.round) == (RequestStatus.OPEN, 1)
    # What a bridge reads to serve it again.
    assert world.requests.overturned_between(0, world.chain.block_number()) == [request_id]
    with pytest.raises(ContractRevert):
        requests.deliver(request_id, fake)
    # Reopened: the honest bridge serves it; the callback only ever sees the true output.
    world.bridge_requests.claim(request_id, BOND)
    honest = world.deal_for(request_id)
    world.settle(honest, truth)
    world.bridge_requests.post_result(request_id, honest, sha256(truth))
    advance_chain_time(world.chain, CHALLENGE_WINDOW_S + 1)
    world.requests.deliver(request_id, truth)

    changes = books.check()
    assert world.example.read("answers", request_id) == "OPTIMISTIC"
    assert changes["challenger"] == BOND // 2
    assert requester_net(changes) == -PAYMENT + BOND - BOND // 2
    assert attacker_net(changes) == -BOND
    assert changes["bridge"] == 0


def test_a_frivolous_challenge_pays_the_honest_bridge(
    world: OnchainWorld, attacker: Attacker
) -> None:
    books = ledger(world, attacker)
    request_id = ask(world, books, "upheld", policy=world.optimistic)
    truth = output_tarball("UPHELD")
    world.bridge_requests.claim(request_id, BOND)
    deal = world.deal_for(request_id)
    world.settle(deal, truth)
    world.bridge_requests.post_result(request_id, deal, sha256(truth))
    attacker.requests(attacker.job_creator).challenge(request_id, BOND)
    for member in world.consortium[:2]:
        member.vote(request_id, world.optimistic, sha256(truth))
    assert world.requests.request(request_id).status is RequestStatus.UPHELD
    world.requests.deliver(request_id, truth)  # final: no need to wait for the window
    changes = books.check()
    assert world.example.read("answers", request_id) == "UPHELD"
    assert changes["bridge"] == BOND
    assert attacker_net(changes) == -BOND


def test_a_challenge_after_its_window_is_refused(world: OnchainWorld, attacker: Attacker) -> None:
    books = ledger(world, attacker)
    request_id = ask(world, books, "window", policy=world.optimistic)
    truth = output_tarball("WINDOW")
    world.bridge_requests.claim(request_id, BOND)
    deal = world.deal_for(request_id)
    world.settle(deal, truth)
    world.bridge_requests.post_result(request_id, deal, sha256(truth))
    advance_chain_time(world.chain, CHALLENGE_WINDOW_S + 1)
    with pytest.raises(ContractRevert) as closed:
        attacker.requests(attacker.job_creator).challenge(request_id, BOND)
    assert closed.value.error == "WindowClosed"
    world.requests.deliver(request_id, truth)
    changes = books.check()
    assert changes["bridge"] == 0 and attacker_net(changes) == 0


def test_an_unruled_challenge_returns_both_bonds_and_the_escrow(
    world: OnchainWorld, attacker: Attacker
) -> None:
    books = ledger(world, attacker)
    request_id = ask(world, books, "silent", policy=world.optimistic)
    truth = output_tarball("SILENT")
    world.bridge_requests.claim(request_id, BOND)
    deal = world.deal_for(request_id)
    world.settle(deal, truth)
    world.bridge_requests.post_result(request_id, deal, sha256(truth))
    attacker.requests(attacker.job_creator).challenge(request_id, BOND)
    with pytest.raises(ContractRevert) as early:
        world.requests.refund(request_id)
    assert early.value.error == "TooEarly"
    advance_chain_time(world.chain, 24 * 3_600 + 1)
    world.requests.refund(request_id)
    changes = books.check()
    assert attacker_net(changes) == 0
    assert requester_net(changes) == 0
    assert changes["bridge"] == -PAYMENT  # the consortium failed it: the trust it chose


@pytest.mark.parametrize("optimistic", [False, True], ids=["attested", "optimistic"])
def test_posted_in_time_is_paid_after_the_deadline_and_the_refund_waits(
    world: OnchainWorld, attacker: Attacker, optimistic: bool
) -> None:
    policy = world.optimistic if optimistic else world.policy
    books = ledger(world, attacker)
    request_id = ask(world, books, "late", policy=policy, window_s=900)
    _, tarball = world.serve(request_id, "LATE")
    advance_chain_time(world.chain, 901)
    if not optimistic:  # the consortium may rule after the deadline on a post made in time
        world.attest(request_id, tarball)
    with pytest.raises(ContractRevert) as refused:  # the requester races the bridge: loses
        world.requests.refund(request_id)
    assert refused.value.error == "TooEarly"
    world.bridge_requests.deliver(request_id, tarball)
    changes = books.check()
    assert world.example.read("answers", request_id) == "LATE"
    assert changes["bridge"] == 0


def test_claims_and_posts_after_the_deadline_are_refused(
    world: OnchainWorld, attacker: Attacker
) -> None:
    books = ledger(world, attacker)
    attested = ask(world, books, "a", window_s=900)
    optimistic = ask(world, books, "o", policy=world.optimistic, window_s=900)
    unclaimed = ask(world, books, "u", window_s=900)
    world.bridge_requests.claim(attested, BOND)
    world.bridge_requests.claim(optimistic, BOND)
    tarball = output_tarball("A")
    deals = {r: world.deal_for(r) for r in (attested, optimistic)}
    for deal in deals.values():
        world.settle(deal, tarball)
    advance_chain_time(world.chain, 901)
    with pytest.raises(ContractRevert) as claim:
        attacker.requests(attacker.job_creator).claim(unclaimed, BOND)
    assert claim.value.error == "DeadlinePassed"
    for request_id, deal in deals.items():
        with pytest.raises(ContractRevert) as post:
            world.bridge_requests.post_result(request_id, deal, sha256(tarball))
        assert post.value.error == "DeadlinePassed"
        world.requests.refund(request_id)
    world.requests.refund(unclaimed)
    changes = books.check()
    assert requester_net(changes) == 2 * BOND
    assert changes["bridge"] == -2 * BOND - 2 * PAYMENT  # claimed, did not post in time


def test_an_unruled_attested_post_returns_the_bond(
    world: OnchainWorld, attacker: Attacker
) -> None:
    books = ledger(world, attacker)
    request_id = ask(world, books, "quiet", window_s=900)
    world.serve(request_id, "QUIET")
    world.consortium[0].vote(request_id, world.policy, sha256(output_tarball("QUIET")))
    advance_chain_time(world.chain, 901)
    with pytest.raises(ContractRevert) as early:
        world.requests.refund(request_id)
    assert early.value.error == "TooEarly"
    advance_chain_time(world.chain, 24 * 3_600)
    world.requests.refund(request_id)
    changes = books.check()
    assert changes["bridge"] == -PAYMENT and requester_net(changes) == 0


def test_the_example_client_withdraws_its_change(world: OnchainWorld, attacker: Attacker) -> None:
    books = ledger(world, attacker)
    request_id = ask(world, books, "change")
    _, tarball = world.serve_attested(request_id, "CHANGE")
    world.requests.deliver(request_id, tarball)
    assert world.requests.owed(world.example.address) == MAX_PRICE - PAYMENT
    with pytest.raises(ContractRevert) as stranger:
        ContractClient(world.chain, "StringJobClient", world.example.address,
                       attacker.job_creator).send("withdrawChange")
    assert stranger.value.error == "OnlyOwner"
    world.example.send("withdrawChange")
    changes = books.check()
    assert world.requests.owed(world.example.address) == 0
    assert world.chain.balance_of(world.example.address) == 0
    assert requester_net(changes) == -PAYMENT
