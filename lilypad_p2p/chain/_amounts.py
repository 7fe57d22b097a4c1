"""Amounts as people type them: `1.5eth`, `1000gwei`, or plain wei integers."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_UNITS = {"wei": 0, "gwei": 9, "eth": 18, "ether": 18}
_AMOUNT = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)\s*$")


def parse_amount(text: str) -> int:
    """Wei from `1.5eth`, `1000gwei`, `42wei` or `42`. Raises ValueError on anything else,
    including fractions of a wei and negative amounts."""
    match = _AMOUNT.match(text.lower())
    if match is None or match.group(2) not in ("", *_UNITS):
        raise ValueError(f"{text!r} is not an amount: use e.g. 1.5eth, 1000gwei or 42 (wei)")
    number, unit = match.groups()
    try:
        wei = Decimal(number).scaleb(_UNITS[unit or "wei"])
    except InvalidOperation as exc:
        raise ValueError(f"{text!r} is not an amount") from exc
    if wei != wei.to_integral_value():
        raise ValueError(f"{text!r} is not a whole number of wei")
    return int(wei)


def format_wei(wei: int) -> str:
    """`1.5 ETH (1500000000000000000 wei)`: readable, and exact."""
    eth = Decimal(wei).scaleb(-18).normalize()
    return f"{eth:f} ETH ({wei} wei)"
