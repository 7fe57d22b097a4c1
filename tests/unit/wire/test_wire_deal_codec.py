"""The deal codec in wire/ (pure: the `Deal` type is its caller's; here a stand-in)."""

from __future__ import annotations

from dataclasses import make_dataclass
from typing import Any

import pytest

from lilypad_p2p import wire


def _check_threshold(terms: Any) -> None:
    if terms.threshold < 1:
        raise ValueError("threshold: must be at least 1")


# A stand-in for chain.Deal: its fields, checked only for a positive threshold.
_Terms = make_dataclass("_Terms", sorted(wire.DEAL_FIELDS), frozen=True,
                        namespace={"__post_init__": _check_threshold})


TERMS = _Terms(job_creator="0xa", provider="0xb", payment=2**64, collateral=2**64 - 1,
               mediation_fee=0, mediators=("0xc", "0xd"), threshold=1, result_deadline=9,
               acceptance_window=1, mediation_window=1, job_spec_hash=b"h", module_hash=b"m",
               salt=b"s")


def test_amounts_from_two_to_the_64_travel_as_32_byte_bins_and_come_back() -> None:
    values = wire.deal_to_wire(TERMS)
    assert set(values) == wire.DEAL_FIELDS
    assert values["payment"] == (2**64).to_bytes(32, "big")
    assert values["collateral"] == 2**64 - 1 and values["mediators"] == ["0xc", "0xd"]
    assert wire.deal_from_wire(wire.decode(wire.encode(values)), _Terms) == TERMS


@pytest.mark.parametrize(("change", "says"), [
    ({"payment": b"\x01" * 31}, "deal.payment must be an integer"),
    ({"collateral": "1"}, "deal.collateral must be an integer"),
    ({"mediators": ("0xc",)}, "deal.mediators must be a list"),
    ({"threshold": 0}, "deal: threshold"),
    ({"unknown": 1}, "deal: "),
])
def test_a_bad_wire_deal_is_malformed(change: dict[str, object], says: str) -> None:
    with pytest.raises(wire.MalformedMessage, match=says):
        wire.deal_from_wire({**wire.deal_to_wire(TERMS), **change}, _Terms)
