"""The deal store checks itself at open: a damaged file, or a missing or empty one where deals
were recorded, is refused with instructions; a migration first takes a backup."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from lilypad_p2p.deal_detail import ClientDetail
from lilypad_p2p.market import new_client_deal
from lilypad_p2p.store import _SCHEMA, SCHEMA_VERSION, DealStore, StoreError

T0 = 1_700_000_000_000


def _with_deals(path: Path, count: int = 1) -> None:
    store = DealStore.open(path)
    for i in range(count):
        store.insert(new_client_deal(f"job{i}", now_ms=T0, expires_ms=T0 + 1),
                     ClientDetail(job_offer=bytes(2000), module="hash", submitted_ms=T0))
    store.close()


def test_fresh_database_needs_no_marker_and_deals_leave_one(tmp_path: Path) -> None:
    path = tmp_path / "node.sqlite"
    DealStore.open(path).close()
    assert not (tmp_path / "node.sqlite.history").exists()
    _with_deals(path)
    assert (tmp_path / "node.sqlite.history").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("loss", ["emptied", "deleted"])
def test_lost_database_with_history_is_refused(tmp_path: Path, loss: str) -> None:
    path = tmp_path / "node.sqlite"
    _with_deals(path)
    if loss == "emptied":
        path.write_bytes(b"")
    else:
        path.unlink()
    with pytest.raises(StoreError, match="recorded deals in it") as raised:
        DealStore.open(path)
    assert "delete" in str(raised.value) and "node.sqlite.history" in str(raised.value)
    assert not path.exists() or path.stat().st_size == 0  # nothing was silently created


def test_garbage_in_the_middle_is_found_at_open(tmp_path: Path) -> None:
    path = tmp_path / "node.sqlite"
    _with_deals(path, 200)
    with path.open("r+b") as fh:
        fh.seek(4096 * 5)
        fh.write(b"\xa5" * 4096)
    with pytest.raises(StoreError, match=r"is corrupt .*restore it"):
        DealStore.open(path)


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "node.sqlite"
    path.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(StoreError, match="is corrupt or not a database"):
        DealStore.open(path)


def test_migration_is_preceded_by_a_backup(tmp_path: Path) -> None:
    path = tmp_path / "node.sqlite"
    schema_1 = _SCHEMA.replace(",\n    chain_id INTEGER\n", "\n").replace(
        "CREATE INDEX deals_created ON deals (created_ms, key);\n", "")
    with sqlite3.connect(path) as raw:
        raw.executescript(schema_1)
        raw.execute("INSERT INTO deals VALUES ('k', 'client', 'offered', 0, 0, 1, NULL, ?)",
                    (b"\x80",))
        raw.execute("PRAGMA user_version=1")
    DealStore.open(path).close()
    backup = tmp_path / "node.sqlite.before-v1"
    with sqlite3.connect(backup) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == 1
        assert raw.execute("SELECT key FROM deals").fetchall() == [("k",)]
    assert backup.stat().st_mode & 0o777 == 0o600
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert "chain_id" in [row[1] for row in raw.execute("PRAGMA table_info(deals)")]
        indexes = {row[1] for row in raw.execute("PRAGMA index_list(deals)")}
        assert {"deals_open", "deals_created"} <= indexes
