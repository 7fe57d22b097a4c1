"""The sqlite deal store: round trips, transition log, restart survival, schema version."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
import trio

from lilypad_p2p import store as store_module
from lilypad_p2p import wire
from lilypad_p2p.chain import Deal
from lilypad_p2p.deal_detail import ClientDetail, ProviderDetail
from lilypad_p2p.market import Event, Phase, Side, advance, new_client_deal, new_provider_deal
from lilypad_p2p.store import DealStore, StoreError

T0 = 1_700_000_000_000
OFFERED = ClientDetail(job_offer=b"offer", module="hash", submitted_ms=T0)
COSIGNED = ProviderDetail(
    deal=Deal(job_creator="0x" + "11" * 20, provider="0x" + "22" * 20, payment=1, collateral=1,
              mediation_fee=0, mediators=("0x" + "33" * 20,), threshold=1, result_deadline=9,
              acceptance_window=1, mediation_window=1, job_spec_hash=bytes(32),
              module_hash=bytes(32), salt=bytes(32)),
    job_creator_signature=b"\x01" * 65, provider_signature=b"\x02" * 65, module="hash",
    spec=wire.ResourceSpec(milli_cpu=1, ram_mb=1, disk_mb=1), job_offer_cid="bafy")


def test_deal_round_trip_and_transition_log(tmp_path: Path) -> None:
    store = DealStore.open(tmp_path / "node.sqlite")
    record = new_client_deal("job1", now_ms=T0, expires_ms=T0 + 60_000)
    store.insert(record, replace(OFFERED, salt=b"\x00\x01"))
    matched, _ = advance(record, Event.MATCH_FOUND, T0 + 5)
    store.update(matched, replace(OFFERED, salt=b"\x00\x01", resource_offer="bafy"),
                 Event.MATCH_FOUND)
    store.update(matched, replace(OFFERED, refusal="same phase, no log"))
    stored = store.get("job1")
    assert stored is not None
    assert stored.record == matched
    assert stored.detail == replace(OFFERED, refusal="same phase, no log")
    log = store.transitions("job1")
    assert [(t.from_phase, t.to_phase, t.event) for t in log] == [
        (None, Phase.OFFERED, None),
        (Phase.OFFERED, Phase.MATCHED, Event.MATCH_FOUND),
    ]
    store.close()


def test_phase_counts_and_time_in_each_phase(tmp_path: Path) -> None:
    store = DealStore.open(tmp_path / "node.sqlite")
    for key in ("a", "b"):
        store.insert(new_client_deal(key, now_ms=T0, expires_ms=T0 + 60_000), OFFERED)
    store.update(advance(store.get("a").record, Event.MATCH_FOUND, T0 + 1500)[0], OFFERED,
                 Event.MATCH_FOUND)
    store.update(store.get("b").record, replace(OFFERED, refusal="same phase: no transition"))
    assert store.phase_counts() == [("client", "matched", 1), ("client", "offered", 1)]
    (left,) = store.phase_durations.snapshot()
    assert left["labels"] == {"side": "client", "phase": "offered"}
    assert (left["count"], left["sum_s"]) == (1, 1.5)
    store.close()


def test_survives_reopen_and_filters_open_deals(tmp_path: Path) -> None:
    path = tmp_path / "node.sqlite"
    store = DealStore.open(path)
    provider = new_provider_deal("d1", now_ms=T0, result_deadline_ms=T0 + 9)
    store.insert(provider, COSIGNED)
    done, _ = advance(provider, Event.CANCEL, T0 + 1)
    store.insert(new_provider_deal("d2", now_ms=T0 + 2, result_deadline_ms=T0 + 9), COSIGNED)
    store.update(done, COSIGNED, Event.CANCEL)
    store.put_result("d2", b"tarball")
    store.close()

    again = DealStore.open(path)
    assert [d.record.key for d in again.deals(Side.PROVIDER)] == ["d1", "d2"]
    assert [d.record.key for d in again.deals(Side.PROVIDER, open_only=True)] == ["d2"]
    assert again.deals(Side.CLIENT) == []
    assert again.result("d2") == b"tarball"
    assert again.result("d1") is None
    assert path.stat().st_mode & 0o777 == 0o600
    again.close()


def _long_lived_store(tmp_path: Path) -> DealStore:
    """A client's three finished deals and one open, then a provider's deal, in that order."""
    store = DealStore.open(tmp_path / "node.sqlite")
    for n, key in enumerate(("bafyaa1", "bafyab2", "bafyb3", "bafyc4")):
        record = new_client_deal(key, now_ms=T0 + n, expires_ms=T0 + 60_000)
        detail = replace(OFFERED, deal_id=bytes([0xAB, n]) + bytes(30))
        store.insert(record, detail)
        if key != "bafyc4":
            store.update(advance(record, Event.CANCEL, T0 + 10)[0], detail, Event.CANCEL)
    store.insert(new_provider_deal("ab" * 32, now_ms=T0 + 9, result_deadline_ms=T0 + 99),
                 COSIGNED)
    return store


def test_the_newest_deals_are_read_without_the_rest(tmp_path: Path) -> None:
    store = _long_lived_store(tmp_path)
    assert [d.record.key for d in store.deals(newest=2)] == ["bafyc4", "ab" * 32]
    assert [d.record.key for d in store.deals(Side.CLIENT, newest=2)] == ["bafyb3", "bafyc4"]
    assert [d.record.key for d in store.deals(open_only=True)] == ["bafyc4", "ab" * 32]
    assert [d.record.key for d in store.deals(open_only=True, newest=1)] == ["ab" * 32]
    assert len(store.deals(newest=100)) == len(store.deals()) == 5


def test_deals_are_named_by_key_or_deal_id_exactly_or_by_their_start(tmp_path: Path) -> None:
    store = _long_lived_store(tmp_path)

    def named(name: str, most: int = 10) -> list[str]:
        return [d.record.key for d in store.deals_named(name, most=most)]

    assert named("bafyab2") == ["bafyab2"]
    assert named(" BAFYA ") == ["bafyaa1", "bafyab2"]
    assert named("bafya", most=1) == ["bafyaa1"]  # enough to say it is ambiguous
    assert named("0x" + (bytes([0xAB, 2]) + bytes(30)).hex()) == ["bafyb3"]  # a client's ID
    assert named("0xab02") == ["bafyb3"]
    # 0xab starts the provider's key and every client deal's ID: all are candidates.
    assert named("0xab") == ["bafyaa1", "bafyab2", "bafyb3", "bafyc4", "ab" * 32]
    assert named("ab") == ["ab" * 32]  # without 0x only keys are matched
    assert named("0x" + "ab" * 32) == ["ab" * 32]  # exact: the provider's key is its ID
    assert named("") == named("0x") == named("zz") == []


def test_changes_since_a_mark_name_only_deals_made_or_moved_since(tmp_path: Path) -> None:
    store = _long_lived_store(tmp_path)
    every, mark = store.changed_since(0)
    assert sorted(every) == sorted(["bafyaa1", "bafyab2", "bafyb3", "bafyc4", "ab" * 32])
    assert store.changed_since(mark) == ([], mark)
    open_deal = store.get("bafyc4")
    store.update(open_deal.record, replace(open_deal.detail, refusal="same phase"))
    assert store.changed_since(mark) == ([], mark)  # no new phase: not a change
    store.update(advance(open_deal.record, Event.MATCH_FOUND, T0 + 20)[0], open_deal.detail,
                 Event.MATCH_FOUND)
    store.insert(new_client_deal("bafyd5", now_ms=T0 + 21, expires_ms=T0 + 60_000), OFFERED)
    changed, later = store.changed_since(mark)
    assert sorted(changed) == ["bafyc4", "bafyd5"] and later > mark


async def test_a_scan_in_a_worker_thread_finds_client_deals_by_their_stored_fields(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "SCAN_BATCH_ROWS", 3)  # several statements
    store = DealStore.open(tmp_path / "a home?#%20" / "db")
    for n in range(10):
        salt = bytes([n]) * 32 if n % 2 else None
        store.insert(new_client_deal(f"c{n}", now_ms=T0 + n, expires_ms=T0 + 60_000),
                     replace(OFFERED, salt=salt))
    store.insert(new_provider_deal("ab" * 32, now_ms=T0, result_deadline_ms=T0 + 99), COSIGNED)
    wanted = {bytes([n]) * 32 for n in (1, 5, 9)}
    every, _ = store.client_keys_where(lambda detail: True)
    assert sorted(every) == [f"c{n}" for n in range(10)]  # no provider's

    # While the node goes on writing on its own connection (WAL: the reader never blocks it).
    keys, mark = await trio.to_thread.run_sync(
        store.client_keys_where, lambda detail: detail.get("salt") in wanted)
    store.insert(new_client_deal("late", now_ms=T0 + 99, expires_ms=T0 + 60_000), OFFERED)

    assert sorted(keys) == ["c1", "c5", "c9"]
    assert store.changed_since(mark) == (["late"], mark + 1)  # what came after the scan


def test_update_of_unknown_deal_and_duplicate_insert_fail(tmp_path: Path) -> None:
    store = DealStore.open(tmp_path / "db")
    record = new_client_deal("x", now_ms=T0, expires_ms=T0 + 1)
    with pytest.raises(StoreError):
        store.update(record, OFFERED)
    store.insert(record, OFFERED)
    with pytest.raises(sqlite3.IntegrityError):
        store.insert(record, OFFERED)
    assert len(store.transitions("x")) == 1  # the failed insert left nothing behind


def test_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "db"
    DealStore.open(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA user_version=99")
    with pytest.raises(StoreError, match="schema version 99"):
        DealStore.open(path)


def test_a_result_file_is_stored_piece_by_piece_as_its_bytes(tmp_path):
    store = DealStore.open(tmp_path / "node.sqlite")
    store.insert(new_client_deal("d9", now_ms=1, expires_ms=2), OFFERED)
    output = tmp_path / "out.tar"
    output.write_bytes(bytes(range(256)) * 4099)
    store.put_result_file("d9", output, piece_bytes=1000)
    assert store.result("d9") == output.read_bytes()
    output.write_bytes(b"again")
    store.put_result_file("d9", output)
    assert store.result("d9") == b"again"
