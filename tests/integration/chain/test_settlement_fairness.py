"""The settlement's fairness rules, attacked as a hostile party would, on both backends.

The attacker here builds its own EIP-712 messages from the spec (eth-account's generic
`encode_typed_data` over the type strings the contract publishes, not our `_typed` module), signs
with its own keys and sends raw ABI calls with `send`, so every outcome is the contract's. The
`world` fixture checks conservation of funds after each test.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from chain_world import (
    COLLATERAL,
    DEPOSIT,
    FEE,
    MEDIATION_WINDOW_S,
    MIN_STAKE,
    PAYMENT,
    World,
)
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount

from lilypad_p2p.chain import (
    ContractRevert,
    DeadlineError,
    Deal,
    DealStatus,
    SettlementClient,
    SignatureRejected,
    SkipReason,
    deploy_settlement,
    open_embedded_chain,
    skipped_deals,
)
from lilypad_p2p.testing import advance_chain_time

pytestmark = pytest.mark.chain

RESULT = b"\x21" * 32
WRONG = b"\x22" * 32
PROVIDER_CORRECT, PROVIDER_WRONG = 1, 2


# --- the attacker's own EIP-712 ----------------------------------------------------------------


def _domain(world: World) -> dict[str, Any]:
    return {"name": "LilypadSettlement", "version": "1", "chainId": world.chain.chain_id,
            "verifyingContract": world.address}


def _sign(world: World, key: LocalAccount, primary: str, fields: list[tuple[str, str]],
          message: dict[str, Any]) -> bytes:
    types = {primary: [{"name": n, "type": t} for n, t in fields]}
    signable = encode_typed_data(full_message={
        "types": {"EIP712Domain": [
            {"name": "name", "type": "string"}, {"name": "version", "type": "string"},
            {"name": "chainId", "type": "uint256"},
            {"name": "verifyingContract", "type": "address"}], **types},
        "primaryType": primary, "domain": _domain(world), "message": message})
    signed = key.sign_message(signable)
    return signed.r.to_bytes(32, "big") + signed.s.to_bytes(32, "big") + bytes([signed.v])


def _acceptance(world: World, key: LocalAccount, deal_id: bytes, result: bytes) -> bytes:
    return _sign(world, key, "Acceptance", [("dealId", "bytes32"), ("resultHash", "bytes32")],
                 {"dealId": deal_id, "resultHash": result})


def _verdict(world: World, key: LocalAccount, deal_id: bytes, outcome: int,
             result: bytes) -> bytes:
    return _sign(world, key, "Verdict",
                 [("dealId", "bytes32"), ("outcome", "uint8"), ("resultHash", "bytes32")],
                 {"dealId": deal_id, "outcome": outcome, "resultHash": result})


def _deal_id(world: World, deal: Deal) -> bytes:
    return bytes(world.deployer._view("dealDigest", deal.terms_abi()))


def _key(client: Any) -> LocalAccount:
    return client.account


def _submitted(world: World) -> tuple[Deal, bytes]:
    deal = world.deal()
    world.open(deal)
    world.submit_result(deal, RESULT)
    return deal, _deal_id(world, deal)


def _disputed(world: World) -> tuple[Deal, bytes]:
    deal, deal_id = _submitted(world)
    world.job_creator.send("dispute", deal.terms_abi())
    return deal, deal_id


def _resolve(world: World, deal: Deal, deal_id: bytes, signers: list[Any], outcome: int,
             result: bytes) -> None:
    ordered = sorted(signers, key=lambda m: int(m.account.address, 16))
    packed = b"".join(_verdict(world, _key(m), deal_id, outcome, result) for m in ordered)
    world.stranger.send("resolve", deal.terms_abi(), list(deal.mediators), outcome, result,
                        packed)


# --- griefing the settlement -------------------------------------------------------------------


def test_accept_then_dispute_still_settles(world: World) -> None:
    """A job creator signs an Acceptance, then disputes before the provider's batch lands."""
    deal, deal_id = _submitted(world)
    acceptance = _acceptance(world, _key(world.job_creator), deal_id, RESULT)
    world.job_creator.send("dispute", deal.terms_abi())
    assert world.deployer.deal_state(deal).status is DealStatus.DISPUTED
    receipt = world.provider.send("settleBatch", [deal.terms_abi()], [RESULT], [acceptance])
    assert skipped_deals(world.deployer, receipt) == {}
    assert world.deployer.deal_state(deal).status is DealStatus.SETTLED
    assert world.provider.balance().free == DEPOSIT + PAYMENT
    assert world.job_creator.balance().free == DEPOSIT - PAYMENT  # unused fee back
    # and the mediators can no longer apply a verdict to it
    with pytest.raises(ContractRevert, match="AlreadySettled"):
        _resolve(world, deal, deal_id, world.mediators[:3], PROVIDER_WRONG, WRONG)


def test_bad_deals_in_a_batch_are_skipped_not_fatal(world: World) -> None:
    good = [world.deal() for _ in range(3)]
    for deal in good:
        world.open(deal)
    settled_before = world.deal()
    world.open(settled_before)
    never_opened = world.deal()
    bad_signature = world.deal()
    world.open(bad_signature)
    ids = {id(d): _deal_id(world, d) for d in (*good, settled_before, never_opened, bad_signature)}
    jc = _key(world.job_creator)

    def item(deal: Deal, key: LocalAccount = jc) -> tuple[Any, bytes, bytes]:
        return deal.terms_abi(), RESULT, _acceptance(world, key, ids[id(deal)], RESULT)

    world.stranger.send("settle", *item(settled_before))
    batch = [item(good[0]), item(never_opened), item(good[1]), item(settled_before),
             item(bad_signature, _key(world.provider)), item(good[2])]
    batch.append((bad_signature.terms_abi(), RESULT, b"\x01" * 64))  # malformed: 64 bytes
    columns = (list(column) for column in zip(*batch, strict=True))
    receipt = world.provider.send("settleBatch", *columns)
    assert skipped_deals(world.deployer, receipt) == {
        ids[id(never_opened)]: SkipReason.NOT_OPEN,
        ids[id(settled_before)]: SkipReason.FINAL,
        ids[id(bad_signature)]: SkipReason.BAD_SIGNATURE,
    }
    assert all(world.deployer.deal_state(d).status is DealStatus.SETTLED for d in good)
    assert world.deployer.deal_state(bad_signature).status is DealStatus.OPEN
    assert world.provider.balance().free == DEPOSIT + 4 * PAYMENT - COLLATERAL
    assert world.provider.balance().locked == COLLATERAL


# --- the mediation window ----------------------------------------------------------------------


def test_resolve_after_the_mediation_window_is_refused(world: World) -> None:
    deal, deal_id = _disputed(world)
    advance_chain_time(world.chain, MEDIATION_WINDOW_S + 5)
    with pytest.raises(DeadlineError, match="TooLate"):
        _resolve(world, deal, deal_id, world.mediators[:3], PROVIDER_CORRECT, RESULT)
    world.stranger.send("claimTimeout", deal.terms_abi())
    assert world.deployer.deal_state(deal).status is DealStatus.TIMED_OUT_MEDIATION


def test_disputing_and_letting_mediation_lapse_does_not_make_the_job_free(
    world: World,
) -> None:
    # The attack: the job creator holds the output, disputes, and no verdict comes (its own
    # consortium, or it simply never asks). It used to get everything back.
    deal, _ = _disputed(world)
    advance_chain_time(world.chain, MEDIATION_WINDOW_S + 1)
    world.job_creator.send("claimTimeout", deal.terms_abi())
    assert world.deployer.deal_state(deal).status is DealStatus.TIMED_OUT_MEDIATION
    half = PAYMENT // 2
    assert world.job_creator.balance().free == DEPOSIT - half
    assert world.job_creator.balance().locked == 0
    assert world.provider.balance().free == DEPOSIT + half  # and its collateral back
    assert world.provider.balance().locked == 0


def test_a_failure_claim_settles_and_resolves_like_any_result(world: World) -> None:
    # A failure result is the hash of a failure claim (roles/_failure.py): no new path on chain.
    claim = hashlib.sha256(b"lilypad-failure-claim/1\n" + b"\x82\xa9exit_code\x01"
                           b"\xa7failure\xa4exit").digest()
    accepted = world.deal()
    world.open(accepted)
    accepted_id = _deal_id(world, accepted)
    world.stranger.send("settle", accepted.terms_abi(), claim,
                        _acceptance(world, _key(world.job_creator), accepted_id, claim))
    assert world.deployer.deal_state(accepted).status is DealStatus.SETTLED
    disputed = world.deal()
    world.open(disputed)
    world.submit_result(disputed, claim)
    disputed_id = _deal_id(world, disputed)
    world.job_creator.send("dispute", disputed.terms_abi())
    # The consortium re-ran the job and it did not fail: the claim was false.
    _resolve(world, disputed, disputed_id, world.mediators[:3], PROVIDER_WRONG, RESULT)
    state = world.deployer.deal_state(disputed)
    assert (state.status, state.outcome) == (DealStatus.RESOLVED, PROVIDER_WRONG)
    # One paid failure, one false claim slashed.
    assert world.provider.balance().free == DEPOSIT + PAYMENT - COLLATERAL
    assert world.job_creator.balance().free == DEPOSIT - PAYMENT - FEE + COLLATERAL


def test_agreeing_checks_fees_are_paid_in_one_batch(world: World) -> None:
    # Off-chain spot checks: the job creator owes each signer a share per agreeing check and
    # pays many deals' shares in one payFees, its deals settled as if never checked.
    m = [a.account.address for a in world.mediators[:3]]
    before = {a: world.deployer.balance(a).free for a in m}
    jc_before = world.job_creator.balance().free
    world.job_creator.send("payFees", m, [FEE // 3 * 7, FEE // 3 * 5, 1])
    paid = FEE // 3 * 12 + 1
    assert world.job_creator.balance().free == jc_before - paid
    assert [world.deployer.balance(a).free - before[a] for a in m] == [
        FEE // 3 * 7, FEE // 3 * 5, 1]


def test_pay_fees_beyond_the_free_balance_or_mismatched_reverts(world: World) -> None:
    m = world.mediators[0].account.address
    with pytest.raises(ContractRevert, match="InsufficientFunds"):
        world.stranger.send("payFees", [m], [DEPOSIT * 10], gas=200_000)
    with pytest.raises(ContractRevert, match="InvalidDeal"):
        world.stranger.send("payFees", [m], [1, 2], gas=200_000)
    # Paying oneself, even more than one holds, moves nothing and mints nothing.
    own = world.job_creator.account.address
    free = world.job_creator.balance().free
    world.job_creator.send("payFees", [own, own], [free, 1], gas=200_000)
    assert world.job_creator.balance().free == free


def test_timeout_inside_the_mediation_window_is_refused(world: World) -> None:
    deal, deal_id = _disputed(world)
    advance_chain_time(world.chain, MEDIATION_WINDOW_S - 60)
    with pytest.raises(DeadlineError, match="TooEarly"):
        world.job_creator.send("claimTimeout", deal.terms_abi())
    _resolve(world, deal, deal_id, world.mediators[:3], PROVIDER_CORRECT, RESULT)
    assert world.deployer.deal_state(deal).status is DealStatus.RESOLVED


# --- the fee: no cut-out -----------------------------------------------------------------------


def test_left_out_mediators_join_and_share_the_fee(world: World) -> None:
    """Mediator 0 resolves with only the threshold's signatures; the two it cut out join."""
    deal, deal_id = _disputed(world)
    insiders, outsiders = world.mediators[:3], world.mediators[3:]
    _resolve(world, deal, deal_id, insiders, PROVIDER_CORRECT, RESULT)
    terms, members = deal.terms_abi(), list(deal.mediators)
    for mediator in outsiders:
        late = _verdict(world, _key(mediator), deal_id, PROVIDER_CORRECT, RESULT)
        world.stranger.send("addVerdictSignature", terms, members, RESULT, late)
        with pytest.raises(SignatureRejected, match="AlreadySigned"):
            world.stranger.send("addVerdictSignature", terms, members, RESULT, late)
    state = world.deployer.deal_state(deal)
    assert (state.unpaid_signers, state.signer_count) == (0b11111, 5)
    # an outsider of the consortium, or a disagreeing member, cannot join
    stranger_sig = _verdict(world, Account.create(), deal_id, PROVIDER_CORRECT, RESULT)
    with pytest.raises(SignatureRejected, match="NotInConsortium"):
        world.stranger.send("addVerdictSignature", terms, members, RESULT, stranger_sig)
    with pytest.raises(SignatureRejected, match="VerdictInconsistent"):
        world.stranger.send("addVerdictSignature", terms, members, WRONG,
                            _verdict(world, _key(outsiders[0]), deal_id, PROVIDER_CORRECT, WRONG))
    advance_chain_time(world.chain, MEDIATION_WINDOW_S + 1)
    world.stranger.send("claimMediationFee", terms, members)
    share = FEE // 5
    assert [m.balance().free for m in world.mediators] == [share + FEE % 5] + [share] * 4


def test_late_signature_after_the_window_is_refused(world: World) -> None:
    deal, deal_id = _disputed(world)
    _resolve(world, deal, deal_id, world.mediators[1:4], PROVIDER_WRONG, WRONG)
    advance_chain_time(world.chain, MEDIATION_WINDOW_S + 1)
    late = _verdict(world, _key(world.mediators[0]), deal_id, PROVIDER_WRONG, WRONG)
    with pytest.raises(DeadlineError, match="TooLate"):
        world.stranger.send("addVerdictSignature", deal.terms_abi(), list(deal.mediators),
                            WRONG, late)
    world.stranger.send("claimMediationFee", deal.terms_abi(), list(deal.mediators))
    assert world.mediators[0].balance().free == 0
    assert world.job_creator.balance().free == DEPOSIT + COLLATERAL - FEE
    assert world.provider.balance().free == DEPOSIT - COLLATERAL


# --- equivocation ------------------------------------------------------------------------------


def test_equivocating_mediator_is_slashed(world: World) -> None:
    deal, deal_id = _disputed(world)
    liar = world.mediators[2]
    yes = _verdict(world, _key(liar), deal_id, PROVIDER_CORRECT, RESULT)
    no = _verdict(world, _key(liar), deal_id, PROVIDER_WRONG, WRONG)
    with pytest.raises(SignatureRejected, match="NotEquivocation"):  # the same verdict twice
        world.stranger.send("slashEquivocation", deal_id, PROVIDER_CORRECT, RESULT, yes,
                            PROVIDER_CORRECT, RESULT, yes)
    honest = _verdict(world, _key(world.mediators[0]), deal_id, PROVIDER_WRONG, WRONG)
    with pytest.raises(SignatureRejected, match="NotEquivocation"):  # two different signers
        world.stranger.send("slashEquivocation", deal_id, PROVIDER_CORRECT, RESULT, yes,
                            PROVIDER_WRONG, WRONG, honest)
    before = world.stranger.balance().free
    world.stranger.send("slashEquivocation", deal_id, PROVIDER_CORRECT, RESULT, yes,
                        PROVIDER_WRONG, WRONG, no)
    assert world.deployer.mediator(liar.account.address)[0] == 0
    assert world.stranger.balance().free - before == MIN_STAKE // 2
    assert world.deployer.burned() == MIN_STAKE - MIN_STAKE // 2
    with pytest.raises(ContractRevert, match="NotMediator"):  # once only
        world.stranger.send("slashEquivocation", deal_id, PROVIDER_CORRECT, RESULT, yes,
                            PROVIDER_WRONG, WRONG, no)
    # its signatures no longer count toward a verdict
    with pytest.raises(SignatureRejected, match="UnregisteredMediator"):
        _resolve(world, deal, deal_id, world.mediators[:3], PROVIDER_CORRECT, RESULT)
    _resolve(world, deal, deal_id, [world.mediators[i] for i in (0, 1, 3)], PROVIDER_CORRECT,
             RESULT)


# --- checked casts -----------------------------------------------------------------------------


def test_amounts_above_uint128_revert() -> None:
    """anvil refuses any transaction carrying 2^128 wei or more before it runs, so this one runs
    on its own embedded chain, whose genesis can hold that much."""
    rich = Account.create()
    chain = open_embedded_chain(funded=[(rich.address, 2**200)])
    address = deploy_settlement(chain, rich, withdraw_notice_s=60, min_mediator_stake=MIN_STAKE)
    client = SettlementClient(chain, address, rich)
    for function in ("deposit", "registerMediator"):
        with pytest.raises(ContractRevert, match="AmountOverflow"):
            client.send(function, value=2**128, gas=200_000)
    client.deposit(2**128 - 1)  # the largest amount that fits still goes in
    assert client.balance().free == 2**128 - 1
    assert client.mediator(rich.address)[0] == 0
    assert chain.balance_of(address) == 2**128 - 1  # conservation: nothing else went in
