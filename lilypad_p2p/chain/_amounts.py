"""Amounts as people type them: `1.5eth`, `1000gwei`, or plain wei integers."""

from __future__ import annotations

import re
from decimal import Decimal

_UNITS = {"wei": 0, "gwei": 9, "eth": 18, "ether": 18}
_AMOUNT = re.compile(r"^\s*([0-9]+)(?:\.([0-9]+))?\s*([a-z]*)\s*$")
# No amount on an EVM chain is larger (a uint256); checked on the digits, before int() reads
# text of any length.
MAX_AMOUNT_WEI = (1 << 256) - 1


def parse_amount(text: str) -> int:
    """Wei from `1.5eth`, `1000gwei`, `42wei` or `42`, exactly (digit by digit: a Decimal
    would round past 28 digits). Raises ValueError on anything else, including fractions of a
    wei, negative amounts and amounts over 2^256 − 1 wei."""
    match = _AMOUNT.match(text.lower())
    if match is None or match.group(3) not in ("", *_UNITS):
        raise ValueError(f"{text!r} is not an amount: use e.g. 1.5eth, 1000gwei or 42 (wei)")
    whole, fraction, unit = match.groups()
    places = _UNITS[unit or "wei"]
    fraction = (fraction or "").rstrip("0")
    if len(fraction) > places:
        raise ValueError(f"{text!r} is not a whole number of wei")
    digits = (whole + fraction.ljust(places, "0")).lstrip("0") or "0"
    if len(digits) > len(str(MAX_AMOUNT_WEI)) or int(digits) > MAX_AMOUNT_WEI:
        raise ValueError(f"{text!r} is more than any amount on chain: at most 2^256 − 1 wei")
    return int(digits)


def format_wei(wei: int) -> str:
    """`1.5 ETH (1500000000000000000 wei)`: readable, and exact."""
    eth = Decimal(wei).scaleb(-18).normalize()
    return f"{eth:f} ETH ({wei} wei)"
