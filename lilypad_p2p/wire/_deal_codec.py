"""The co-signed `Deal` as a wire map: one codec for the deal messages and the deal store.

`wire/` stays free of web3, so the `Deal` type (chain/_typed.py, whose constructor checks every
value) is handed to `deal_from_wire` by its caller; this module does the wire form's part:
amounts of 2**64 and over travel as 32-byte bins (wire/_codec.py), mediators as a list.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from lilypad_p2p.wire._codec import UINT64_LIMIT
from lilypad_p2p.wire._deal_messages import DEAL_FIELDS
from lilypad_p2p.wire._errors import MalformedMessage

_AMOUNTS = ("payment", "collateral", "mediation_fee")

DealT = TypeVar("DealT")


def deal_to_wire(deal: object) -> dict[str, object]:
    """A `Deal` (any object with the `DEAL_FIELDS`) as the wire map the deal messages carry."""
    values: dict[str, object] = {name: getattr(deal, name) for name in DEAL_FIELDS}
    values["mediators"] = list(values["mediators"])  # type: ignore[call-overload]
    for name in _AMOUNTS:
        amount = getattr(deal, name)
        # The codec writes ints >= 2**64 as 32-byte bins; `deal_from_wire` reads both.
        values[name] = amount if amount < UINT64_LIMIT else amount.to_bytes(32, "big")
    return values


def deal_from_wire(values: Mapping[str, object], make: Callable[..., DealT]) -> DealT:
    """The deal a wire map carries, built by `make` (the `Deal` type) from its fields.

    Raises:
        MalformedMessage: a value has the wrong type or is out of range.
    """
    fields: dict[str, Any] = dict(values)
    for name in _AMOUNTS:
        amount = fields[name]
        if type(amount) is bytes and len(amount) == 32:
            fields[name] = int.from_bytes(amount, "big")
        elif type(amount) is not int:
            raise MalformedMessage(f"deal.{name} must be an integer")
    mediators = fields["mediators"]
    if type(mediators) is not list:
        raise MalformedMessage("deal.mediators must be a list")
    fields["mediators"] = tuple(mediators)
    try:
        return make(**fields)
    except (TypeError, ValueError) as exc:
        raise MalformedMessage(f"deal: {exc}") from exc
