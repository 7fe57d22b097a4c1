"""The deal codec in wire/ (pure: the `Deal` type is its caller's; here a stand-in)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from lilypad_p2p import wire


@dataclass(frozen=True)
class _Terms:
    """The fields of chain.Deal, checked only for a positive threshold."""

    job_creator: str
    provider: str
    payment: int
    collateral: int
    mediation_fee: int
    mediators: tuple[str, ...]
    threshold: int
    result_deadline: int
    acceptance_window: int
    mediation_window: int
    job_spec_hash: bytes
    module_hash: bytes
    salt: bytes

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ValueError("threshold: must be at least 1")


TERMS = _Terms("0xa", "0xb", 2**64, 2**64 - 1, 0, ("0xc", "0xd"), 1, 9, 1, 1, b"h", b"m", b"s")


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
