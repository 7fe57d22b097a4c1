"""The deal store records each deal's settlement chain, and migrates a schema-1 database."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

from lilypad_p2p.deal_detail import ClientDetail
from lilypad_p2p.market import Event, advance, new_client_deal
from lilypad_p2p.store import SCHEMA_VERSION, DealStore

T0 = 1_700_000_000_000
OFFERED = ClientDetail(job_offer=b"offer", module="hash", submitted_ms=T0)

# The schema this store had before it recorded chains (store.py, schema version 1).
_SCHEMA_1 = """
CREATE TABLE deals (
    key TEXT PRIMARY KEY, side TEXT NOT NULL, phase TEXT NOT NULL,
    phase_since_ms INTEGER NOT NULL, created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL,
    result_deadline_ms INTEGER, detail BLOB NOT NULL
);
CREATE INDEX deals_open ON deals (side, phase);
CREATE TABLE transitions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL REFERENCES deals (key),
    from_phase TEXT, to_phase TEXT NOT NULL, event TEXT, at_ms INTEGER NOT NULL
);
CREATE INDEX transitions_key ON transitions (key, seq);
CREATE TABLE results (key TEXT PRIMARY KEY REFERENCES deals (key), output BLOB NOT NULL);
PRAGMA user_version=1;
"""


def test_each_deal_keeps_its_chain_through_updates_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "node.sqlite"
    store = DealStore.open(path)
    on_a = new_client_deal("job-a", now_ms=T0, expires_ms=T0 + 60_000)
    on_b = new_client_deal("job-b", now_ms=T0 + 1, expires_ms=T0 + 60_000)
    store.insert(on_a, OFFERED, chain_id=31337)
    store.insert(on_b, OFFERED, chain_id=31338)
    store.update(advance(on_a, Event.MATCH_FOUND, T0 + 5)[0], OFFERED, Event.MATCH_FOUND)
    store.close()
    reopened = DealStore.open(path)
    assert [(s.record.key, s.chain_id) for s in reopened.deals()] == [
        ("job-a", 31337), ("job-b", 31338)]
    stored = reopened.get("job-a")
    assert stored is not None and stored.chain_id == 31337
    # What a role's _save builds keeps the chain.
    assert replace(stored, detail=OFFERED).chain_id == 31337


def test_a_schema_1_database_migrates_with_its_deals_on_the_default_chain(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as raw:
        raw.executescript(_SCHEMA_1)
        raw.execute("INSERT INTO deals VALUES ('old', 'client', 'offered', 1, 1, 2, NULL, ?)",
                    (b"\x83\xa9job_offer\xc4\x05offer\xa6module\xa4hash"
                     b"\xacsubmitted_ms\xcf\x00\x00\x01\x8b\xcf\xe5h\x00",))
    store = DealStore.open(path)
    old = store.get("old")
    assert old is not None and old.chain_id is None and old.detail == OFFERED
    store.insert(new_client_deal("new", now_ms=T0, expires_ms=T0 + 1), OFFERED, chain_id=7)
    assert [s.chain_id for s in store.deals()] == [None, 7]
    store.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
