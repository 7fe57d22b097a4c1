"""The deal store's codec: each side's typed record <-> a row's `detail` map.

The rows below are written byte for byte as the roles wrote them when a deal's detail was a
plain map (the co-signed deal in its wire form, every value under its own key): such rows load
as typed records and encode back to the same map (less values that say nothing).
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import msgpack
import pytest

from lilypad_p2p import wire
from lilypad_p2p.chain import Deal
from lilypad_p2p.deal_detail import (
    ClientDetail,
    IncompleteDeal,
    MediatorDetail,
    ProviderDetail,
    required,
)
from lilypad_p2p.market import Side
from lilypad_p2p.store import (
    DealStore,
    StoreError,
    decode_detail,
    decode_verdict,
    encode_detail,
    encode_verdict,
)

T0 = 1_700_000_000_000
CLIENT = "0x" + "11" * 20
PROVIDER = "0x" + "22" * 20
MEDIATORS = ("0x" + "33" * 20, "0x" + "44" * 20)
DEAL = Deal(job_creator=CLIENT, provider=PROVIDER, payment=3 * 10**19, collateral=2 * 10**15,
            mediation_fee=0, mediators=MEDIATORS, threshold=2, result_deadline=1_700_000_600,
            acceptance_window=120, mediation_window=600, job_spec_hash=b"\x01" * 32,
            module_hash=b"\x02" * 32, salt=b"\x03" * 32)
SPEC = wire.ResourceSpec(milli_cpu=500, ram_mb=64, disk_mb=16)

# A client's settled deal, as `ClientRole` wrote it: submit, match, countersign, open, verify.
OLD_CLIENT_ROW = {
    "job_offer": b"\x85signed-envelope", "inputs_spool": "/home/spool/client/bafy.inputs",
    "module": "0x" + "ab" * 32, "module_name": "hash", "submitted_ms": T0,
    "resource_offer": "bafyresource", "deal": wire.deal_to_wire(DEAL),
    "job_creator_signature": b"\x04" * 65, "matched_ms": T0 + 10,
    "refused": {"bafyother": T0 + 2_000}, "refusal": "no free capacity",
    "provider_signature": b"\x05" * 65, "provider_record": b"\x86record", "agreed_ms": T0 + 20,
    "deal_id": b"\x06" * 32, "opened_ms": T0 + 30, "result_hash": b"\x07" * 32,
    "provider_commitment": b"\x08" * 65, "acceptance_signature": b"\x09" * 65,
    "result_path": "/home/results/bafy.tar", "result_ms": T0 + 40, "result_cid": "bafyresult",
    "acceptance_delivered": True, "settled_ms": T0 + 50,
}
# A client's deal that a mediation resolved, after a failure result and a spot check.
OLD_DISPUTED_ROW = {
    "job_offer": b"\x85signed-envelope", "module": "0x" + "ab" * 32, "submitted_ms": T0,
    "salt": b"\x03" * 32, "deal": wire.deal_to_wire(DEAL), "failure": "exit",
    "failure_exit_code": 3, "spot_check": True, "check_outcome": "PROVIDER_CORRECT",
    "check_fees": {MEDIATORS[0]: 5, MEDIATORS[1]: 4}, "check_fees_paid": True,
    "outcome": "PROVIDER_WRONG", "verdict_hash": b"\x0a" * 32,
    "verdict_signers": list(MEDIATORS), "dissent": [], "silent_mediators": [MEDIATORS[1]],
    "resolved_by_us": True, "disputed_by_user": True, "last_refusal": "busy",
    "settled_by_us": False, "chain_status": "RESOLVED", "error": "accepted timed out",
}
# A provider's settled deal, as `ProviderRole` wrote it.
OLD_PROVIDER_ROW = {
    "deal": wire.deal_to_wire(DEAL), "job_creator_signature": b"\x04" * 65,
    "provider_signature": b"\x05" * 65, "module": "0x" + "ab" * 32, "spec": SPEC.to_wire(),
    "job_offer_cid": "bafyjob", "inputs_spool": "/home/spool/provider/ab.inputs",
    "output_recipient": b"\x0b" * 32, "error": "Docker is not available on this provider",
    "result_hash": b"\x07" * 32, "commitment_signature": b"\x08" * 65,
    "result_cid": "bafyresult", "acceptance_signature": b"\x09" * 65,
    "submitted_on_chain": True, "settled_ms": T0 + 50, "batch_size": 2,
    "outcome": "PROVIDER_CORRECT", "chain_status": "SETTLED",
}


def _old_row(path: Path, key: str, side: Side, detail: dict[str, object]) -> None:
    """Insert a deal row with `detail` packed as the roles packed their maps."""
    with sqlite3.connect(path) as raw:
        raw.execute("INSERT INTO deals VALUES (?, ?, 'settled', 1, 1, 2, NULL, ?, 31337)",
                    (key, side.value, msgpack.packb(detail, use_bin_type=True)))


@pytest.mark.parametrize(("side", "row"), [
    (Side.CLIENT, OLD_CLIENT_ROW), (Side.CLIENT, OLD_DISPUTED_ROW),
    (Side.PROVIDER, OLD_PROVIDER_ROW),
], ids=["client", "client-disputed", "provider"])
def test_rows_written_as_maps_load_as_typed_records(tmp_path: Path, side, row) -> None:
    path = tmp_path / "node.sqlite"
    DealStore.open(path).close()
    _old_row(path, "old", side, row)
    store = DealStore.open(path)
    stored = store.get("old")
    assert stored is not None
    assert type(stored.detail) is {Side.CLIENT: ClientDetail, Side.PROVIDER: ProviderDetail}[side]
    assert stored.detail.deal == DEAL  # typed, its amount over 2**64 included
    # Written back the same, less what says nothing (an empty list reads as the default) and
    # a client's copy of the provider's deal signature (clients no longer open deals).
    retired = ("provider_signature",) if side is Side.CLIENT else ()
    kept = {name: value for name, value in row.items() if name not in retired}
    assert msgpack.unpackb(encode_detail(stored.detail), raw=False) == {
        name: value for name, value in kept.items() if value != []}
    for name, value in kept.items():
        if name not in ("deal", "spec", "verdict_signers", "dissent", "silent_mediators"):
            assert getattr(stored.detail, name) == value, name


def test_typed_fields_keep_their_types(tmp_path: Path) -> None:
    provider = decode_detail(Side.PROVIDER, msgpack.packb(OLD_PROVIDER_ROW))
    assert isinstance(provider, ProviderDetail) and provider.spec == SPEC
    disputed = decode_detail(Side.CLIENT, msgpack.packb(OLD_DISPUTED_ROW))
    assert isinstance(disputed, ClientDetail)
    assert (disputed.verdict_signers, disputed.dissent, disputed.silent_mediators) == (
        MEDIATORS, (), (MEDIATORS[1],))


def test_only_set_fields_are_written_and_each_side_reads_its_own(tmp_path: Path) -> None:
    fresh = ClientDetail(job_offer=b"offer", module="hash", submitted_ms=T0)
    assert msgpack.unpackb(encode_detail(fresh)) == {
        "job_offer": b"offer", "module": "hash", "submitted_ms": T0}
    matched = replace(fresh, deal=DEAL, refused={"bafy": T0})
    assert decode_detail(Side.CLIENT, encode_detail(matched)) == matched
    with pytest.raises(StoreError, match="client deal's detail"):
        decode_detail(Side.CLIENT, msgpack.packb(OLD_PROVIDER_ROW))
    with pytest.raises(StoreError, match="provider deal's detail"):
        decode_detail(Side.PROVIDER, encode_detail(fresh))


@pytest.mark.parametrize("blob", [
    msgpack.packb([1, 2]),
    msgpack.packb({**OLD_PROVIDER_ROW, "unknown": 1}),
    msgpack.packb({**OLD_PROVIDER_ROW, "deal": {**wire.deal_to_wire(DEAL), "payment": "x"}}),
], ids=["not a map", "unknown field", "bad deal"])
def test_a_corrupt_detail_is_a_store_error(blob: bytes) -> None:
    with pytest.raises(StoreError, match="corrupt"):
        decode_detail(Side.PROVIDER, blob)


def test_a_value_missing_from_its_phase_is_named() -> None:
    fresh = ClientDetail(job_offer=b"offer", module="hash", submitted_ms=T0)
    with pytest.raises(IncompleteDeal, match="no deal"):
        required(fresh.deal, "deal")
    assert required(replace(fresh, deal=DEAL).deal, "deal") is DEAL


VERDICT = wire.VerdictNotice(deal_id=b"\x06" * 32, outcome=1, result_hash=b"\x07" * 32,
                             mediator_signature=b"\x0c" * 65)


def test_a_mediator_verdict_file_as_the_mediator_wrote_it_loads_and_is_written_the_same() -> None:
    written = wire.encode({"verdict": VERDICT.to_wire(), "deal": wire.deal_to_wire(DEAL),
                           "chain_id": 31337, "fee_settled": False})
    saved = decode_verdict(written)
    assert saved == MediatorDetail(VERDICT, DEAL, 31337, fee_settled=False)
    assert encode_verdict(saved) == written
    # Saved before chains were recorded: on the node's default chain, which the mediator knows.
    older = wire.encode({"verdict": VERDICT.to_wire(), "deal": wire.deal_to_wire(DEAL),
                         "fee_settled": True})
    assert decode_verdict(older) == MediatorDetail(VERDICT, DEAL, None, fee_settled=True)


def test_a_file_that_is_no_verdict_is_a_wire_error() -> None:
    with pytest.raises(wire.WireError):
        decode_verdict(wire.encode([1]))
    with pytest.raises(wire.WireError):
        decode_verdict(wire.encode({"verdict": wire.deal_to_wire(DEAL), "deal": {},
                                    "fee_settled": True}))
