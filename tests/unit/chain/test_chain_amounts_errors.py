"""Amount parsing for the CLI, and the revert -> typed error map."""

from __future__ import annotations

import pytest

from lilypad_p2p.chain import (
    AlreadySettled,
    ChainError,
    ContractRevert,
    DeadlineError,
    SignatureRejected,
    format_wei,
    parse_amount,
)
from lilypad_p2p.chain._errors import revert_error
from lilypad_p2p.errors import LilypadError


@pytest.mark.parametrize(
    ("text", "wei"),
    [("1.5eth", 1_500_000_000_000_000_000), ("1000gwei", 10**12), ("42", 42), ("42wei", 42),
     ("0.000000000000000001 ETH", 1), ("2 ether", 2 * 10**18), (" 7 ", 7)],
)
def test_parse_amount(text: str, wei: int) -> None:
    assert parse_amount(text) == wei


@pytest.mark.parametrize("text", ["", "-1", "1.5", "0.1gwei0", "1e18", "1.5wei", "3 btc", "eth"])
def test_parse_amount_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_amount(text)


def test_format_wei_is_exact() -> None:
    assert format_wei(1_500_000_000_000_000_000) == "1.5 ETH (1500000000000000000 wei)"
    assert format_wei(1) == "0.000000000000000001 ETH (1 wei)"


def test_reverts_map_to_typed_errors() -> None:
    assert isinstance(revert_error("AlreadySettled", {"dealId": b"\x01"}), AlreadySettled)
    assert isinstance(revert_error("MalleableSignature"), SignatureRejected)
    assert isinstance(revert_error("WithdrawNotReady", {"readyAt": 5}), DeadlineError)
    unknown = revert_error("SomethingNew", {"x": 1})
    assert type(unknown) is ContractRevert
    assert str(unknown) == "SomethingNew(x=1)"
    assert issubclass(ContractRevert, ChainError) and issubclass(ChainError, LilypadError)


@pytest.mark.parametrize("text", ["123456789012345678901234567891",
                                  str((1 << 128) + 1), str((1 << 256) - 1),
                                  "340282366920938463463.374607431768211457eth"])
def test_parse_amount_is_exact_past_28_digits(text: str) -> None:
    # A Decimal in its default context rounds to 28 digits: a bound checked on the rounded
    # value would let through what it should refuse.
    digits = text.removesuffix("eth").replace(".", "")
    assert parse_amount(text) == int(digits)


@pytest.mark.parametrize("text", [str(1 << 256), "1" * 5000, "1" + "0" * 60 + "eth"])
def test_parse_amount_refuses_more_than_any_amount_on_chain(text: str) -> None:
    with pytest.raises(ValueError, match="more than any amount on chain"):
        parse_amount(text)
