"""EIP-712 structs: our hashing equals eth-account's generic encoder; validation; signatures."""

from __future__ import annotations

import dataclasses
import os

import pytest
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data
from hypothesis import given
from hypothesis import strategies as st

from lilypad_p2p.chain import (
    Acceptance,
    Deal,
    Domain,
    Outcome,
    ResultCommitment,
    SignatureInvalid,
    Verdict,
    default_threshold,
    recover_typed,
    require_signer,
    sign_typed,
    typed_data_types,
)
from lilypad_p2p.chain._typed import HALF_CURVE_ORDER
from lilypad_p2p.errors import PeerMisbehaved

JC = Account.from_key(b"\x01" * 32)
RP = Account.from_key(b"\x02" * 32)
MEDIATORS = tuple(sorted((Account.from_key(bytes([i]) * 32).address for i in range(3, 8)),
                         key=lambda a: int(a, 16)))
DOMAIN = Domain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")


def make_deal(**overrides: object) -> Deal:
    terms: dict[str, object] = dict(
        job_creator=JC.address, provider=RP.address, payment=10**18, collateral=2 * 10**18,
        mediation_fee=10**17, mediators=MEDIATORS, threshold=4, result_deadline=1_800_000_000,
        acceptance_window=600, mediation_window=3600, job_spec_hash=b"\x0a" * 32,
        module_hash=b"\x0b" * 32, salt=b"\x0c" * 32,
    )
    terms.update(overrides)
    return Deal(**terms)  # type: ignore[arg-type]


def eth_account_digest(primary: str, message: dict[str, object]) -> bytes:
    full = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            **typed_data_types(primary),
        },
        "primaryType": primary,
        "domain": DOMAIN.as_typed_data(),
        "message": message,
    }
    return bytes(_hash_eip191_message(encode_typed_data(full_message=full)))


def test_deal_digest_matches_eth_account() -> None:
    deal = make_deal()
    assert deal.deal_id(DOMAIN) == eth_account_digest("Deal", deal.as_typed_data())


@given(
    payment=st.integers(0, 2**128 - 1),
    deadline=st.integers(0, 2**64 - 1),
    salt=st.binary(min_size=32, max_size=32),
    count=st.integers(1, 5),
)
def test_deal_digest_matches_eth_account_for_any_terms(
    payment: int, deadline: int, salt: bytes, count: int
) -> None:
    deal = make_deal(payment=payment, result_deadline=deadline, salt=salt,
                     mediators=MEDIATORS[:count], threshold=default_threshold(count))
    assert deal.deal_id(DOMAIN) == eth_account_digest("Deal", deal.as_typed_data())


@pytest.mark.parametrize(
    ("struct", "primary"),
    [
        (Acceptance(b"\x01" * 32, b"\x02" * 32), "Acceptance"),
        (ResultCommitment(b"\x01" * 32, b"\x02" * 32), "ResultCommitment"),
        (Verdict(b"\x01" * 32, Outcome.NON_DETERMINISTIC, b"\x02" * 32), "Verdict"),
    ],
)
def test_small_struct_digests_match_eth_account(struct: object, primary: str) -> None:
    digest = DOMAIN.digest(struct.struct_hash())  # type: ignore[attr-defined]
    assert digest == eth_account_digest(primary, struct.as_typed_data())  # type: ignore[attr-defined]


def test_acceptance_and_commitment_are_not_interchangeable() -> None:
    acceptance = Acceptance(b"\x01" * 32, b"\x02" * 32)
    commitment = ResultCommitment(b"\x01" * 32, b"\x02" * 32)
    assert acceptance.struct_hash() != commitment.struct_hash()


def test_sign_and_recover_round_trip() -> None:
    deal = make_deal()
    signature = sign_typed(deal, DOMAIN, JC)
    assert recover_typed(deal, DOMAIN, signature) == JC.address
    require_signer(deal, DOMAIN, signature, JC.address.lower())
    with pytest.raises(SignatureInvalid):
        require_signer(deal, DOMAIN, signature, RP.address)
    other_chain = Domain(DOMAIN.chain_id + 1, DOMAIN.verifying_contract)
    assert recover_typed(deal, other_chain, signature) != JC.address


def test_signatures_are_low_s_and_high_s_is_refused() -> None:
    deal = make_deal()
    signature = sign_typed(deal, DOMAIN, JC)
    s = int.from_bytes(signature[32:64], "big")
    assert s <= HALF_CURVE_ORDER
    twin = signature[:32] + (2 * HALF_CURVE_ORDER + 1 - s).to_bytes(32, "big") + bytes(
        [55 - signature[64]]
    )
    with pytest.raises(SignatureInvalid, match="high-s"):
        recover_typed(deal, DOMAIN, twin)
    with pytest.raises(SignatureInvalid):
        recover_typed(deal, DOMAIN, signature[:64])
    with pytest.raises(SignatureInvalid):
        recover_typed(deal, DOMAIN, signature[:64] + b"\x01")


def test_bad_signature_is_a_peer_fault() -> None:
    assert issubclass(SignatureInvalid, PeerMisbehaved)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"mediators": tuple(reversed(MEDIATORS))}, "ascending"),
        ({"mediators": (MEDIATORS[0], MEDIATORS[0])}, "ascending"),
        ({"mediators": ()}, "mediators"),
        ({"mediators": (JC.address,), "threshold": 1}, "party"),
        ({"threshold": 0}, "threshold"),
        ({"threshold": 6}, "threshold"),
        ({"payment": -1}, "payment"),
        ({"payment": 2**128}, "payment"),
        ({"result_deadline": 2**64}, "result_deadline"),
        ({"salt": b"short"}, "salt"),
        ({"provider": "0x1234"}, "provider"),
        ({"mediators": list(MEDIATORS)}, "tuple"),
    ],
)
def test_invalid_deals_cannot_exist(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_deal(**overrides)


def test_addresses_are_normalised_to_checksum() -> None:
    deal = make_deal(job_creator=JC.address.lower())
    assert deal.job_creator == JC.address
    assert deal == make_deal()
    with pytest.raises(dataclasses.FrozenInstanceError):
        deal.payment = 1  # type: ignore[misc]


def test_verdict_outcome_is_an_enum() -> None:
    verdict = Verdict(os.urandom(32), 2, os.urandom(32))  # type: ignore[arg-type]
    assert verdict.outcome is Outcome.PROVIDER_WRONG
    with pytest.raises(ValueError):
        Verdict(os.urandom(32), 0, os.urandom(32))  # type: ignore[arg-type]


@pytest.mark.parametrize(("n", "k"), [(1, 1), (2, 2), (3, 3), (4, 3), (5, 4), (7, 5), (32, 22)])
def test_default_threshold(n: int, k: int) -> None:
    assert default_threshold(n) == k


def test_default_threshold_bounds() -> None:
    for n in (0, 33):
        with pytest.raises(ValueError):
            default_threshold(n)
