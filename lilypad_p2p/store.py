"""The node's database: deals, every transition, and results, in one sqlite file.

The roles write a deal's new record *before* acting on it (sending a message, a transaction),
so after a crash the database says what was being done and the action is repeated; every
action is idempotent (see `roles/`). WAL mode keeps readers (the `deals` command) off the
writer's back; `synchronous=NORMAL` survives a killed process (a power cut may lose the last
commit, which the resume logic tolerates: an earlier phase is always safe to resume from).

A deal row holds the state machine's `DealRecord`, the ID of the settlement chain the deal
lives on (NULL for rows written before schema 2: the node's default chain), plus `detail`, what
its side needs to resume (deal_detail.py: the job offer, the co-signed deal, signatures, the
sealed inputs' spool...) as a msgpack map of the record's fields that are set, the deal in its
wire form (`encode_detail`/`decode_detail`). Sealed inputs are stored sealed, never in the clear.

Calls are synchronous and short (one small transaction); the roles call them on the trio
thread, which keeps every write ordered with the action that follows it.
"""

from __future__ import annotations

import contextlib
import sqlite3
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any, Generic, Self, TypeVar, cast

import msgpack

from lilypad_p2p import wire
from lilypad_p2p.chain import Deal
from lilypad_p2p.deal_detail import ClientDetail, DealDetail, MediatorDetail, ProviderDetail
from lilypad_p2p.errors import LilypadError
from lilypad_p2p.market import DealRecord, Event, Phase, Side
from lilypad_p2p.tally import Tally

SCHEMA_VERSION = 3
# Beside the database: `node.sqlite.history` (it holds deals; its loss is refused) and
# `node.sqlite.before-vN` (a copy taken before migrating from schema N).
HISTORY_MARKER_SUFFIX = ".history"
BACKUP_INFIX = ".before-v"
# How long a writer waits for another connection's lock (the CLI may read concurrently).
BUSY_TIMEOUT_MS = 5000
# Rows a scan in a worker thread reads per statement: short statements keep its read snapshots
# short (WAL: readers never block the node's writes, but a long snapshot holds the log back).
SCAN_BATCH_ROWS = 1000

_SCHEMA = """
CREATE TABLE deals (
    key TEXT PRIMARY KEY,
    side TEXT NOT NULL,
    phase TEXT NOT NULL,
    phase_since_ms INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    result_deadline_ms INTEGER,
    detail BLOB NOT NULL,
    chain_id INTEGER
);
CREATE INDEX deals_open ON deals (side, phase);
CREATE INDEX deals_created ON deals (created_ms, key);
CREATE TABLE transitions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL REFERENCES deals (key),
    from_phase TEXT,
    to_phase TEXT NOT NULL,
    event TEXT,
    at_ms INTEGER NOT NULL
);
CREATE INDEX transitions_key ON transitions (key, seq);
CREATE TABLE results (
    key TEXT PRIMARY KEY REFERENCES deals (key),
    output BLOB NOT NULL
);
"""
# Schema migrations: the script that takes version N to N + 1.
_MIGRATIONS = {
    1: "ALTER TABLE deals ADD COLUMN chain_id INTEGER;",  # several chains per node
    2: "CREATE INDEX IF NOT EXISTS deals_created ON deals (created_ms, key);",  # the newest
}


class StoreError(LilypadError):
    """The database is unusable: a newer schema, or a deal that does not exist."""


class StoreUnavailable(StoreError):
    """A write failed for a local reason (the disk is full, the file unwritable): nothing was
    written, and the same write can be tried again once the cause is gone."""


DetailT = TypeVar("DetailT", bound=DealDetail)


@dataclass(frozen=True, slots=True)
class StoredDeal(Generic[DetailT]):
    record: DealRecord
    detail: DetailT
    # The deal's settlement chain; None: written before chains were recorded (the default).
    chain_id: int | None = None


ClientDeal = StoredDeal[ClientDetail]
ProviderDeal = StoredDeal[ProviderDetail]


@dataclass(frozen=True, slots=True)
class Transition:
    from_phase: Phase | None
    to_phase: Phase
    event: Event | None
    at_ms: int


# Each side's record type, and the record fields whose wire form differs from their value.
_DETAIL_TYPES: dict[Side, type[DealDetail]] = {
    Side.CLIENT: ClientDetail, Side.PROVIDER: ProviderDetail,
}
_FIELD_CODECS: dict[str, tuple[Callable[[Any], object], Callable[[Any], object]]] = {
    "deal": (wire.deal_to_wire, lambda values: wire.deal_from_wire(values, Deal)),
    "spec": (wire.ResourceSpec.to_wire, wire.ResourceSpec.from_wire),
    "verdict_signers": (list, tuple),
    "dissent": (list, tuple),
    "silent_mediators": (list, tuple),
}


def _defaults(kind: type[DealDetail]) -> dict[str, object]:
    """Each field's default; a required field's is MISSING."""
    return {f.name: f.default_factory() if f.default_factory is not MISSING else f.default
            for f in fields(kind)}


_DEFAULTS = {kind: _defaults(kind) for kind in _DETAIL_TYPES.values()}


def encode_detail(detail: DealDetail) -> bytes:
    """A deal's record as its row's `detail`: a msgpack map of the fields that are set."""
    defaults = _DEFAULTS[type(detail)]
    values: dict[str, object] = {}
    for name, default in defaults.items():
        value = getattr(detail, name)
        if value != default:
            encode = _FIELD_CODECS.get(name)
            values[name] = encode[0](value) if encode else value
    return msgpack.packb(values, use_bin_type=True)


# Fields earlier versions wrote that no record has now, dropped as a row is read: a client's
# copy of the provider's deal signature, from when the client opened deals on chain.
_RETIRED_FIELDS = {Side.CLIENT: ("provider_signature",)}


def decode_detail(side: Side, blob: bytes) -> DealDetail:
    """The `side`'s record that a row's `detail` holds.

    Raises:
        StoreError: the map is not such a record (the database is corrupt).
    """
    kind = _DETAIL_TYPES[side]
    values = msgpack.unpackb(blob, raw=False, strict_map_key=False)
    if not isinstance(values, dict):
        raise StoreError("a deal's detail is not a map: the database is corrupt")
    for name in _RETIRED_FIELDS.get(side, ()):
        values.pop(name, None)
    try:
        for name, codec in _FIELD_CODECS.items():
            if name in values:
                values[name] = codec[1](values[name])
        return kind(**values)
    except (TypeError, KeyError, wire.WireError) as exc:
        raise StoreError(f"a {side} deal's detail is not one ({exc}): the database is "
                         "corrupt") from exc


def encode_verdict(saved: MediatorDetail) -> bytes:
    """A mediator's verdict record as its file's bytes (canonical msgpack)."""
    body: dict[str, object] = {"verdict": saved.verdict.to_wire(),
                               "deal": wire.deal_to_wire(saved.deal),
                               "chain_id": saved.chain_id, "fee_settled": saved.fee_settled}
    return wire.encode(body)


def decode_verdict(blob: bytes) -> MediatorDetail:
    """The mediator's verdict record a file holds; one saved before chains were recorded has
    no chain ID (None).

    Raises:
        wire.WireError: the bytes are not such a record.
    """
    saved = wire.decode(blob)
    if not isinstance(saved, dict):
        raise wire.MalformedMessage("a saved verdict is a map")
    notice = wire.deal_message_from_wire(saved["verdict"])
    if not isinstance(notice, wire.VerdictNotice):
        raise wire.MalformedMessage("a saved verdict holds a VerdictNotice")
    return MediatorDetail(notice, wire.deal_from_wire(saved["deal"], Deal),
                          saved.get("chain_id"), saved["fee_settled"])


class DealStore:
    """One sqlite database; open with `DealStore.open(path)` and `close()` when done."""

    def __init__(self, connection: sqlite3.Connection, marker: Path, path: Path) -> None:
        self._db = connection
        self._marker = marker
        self._path = path
        self._marked = marker.exists()
        # Time each deal spent in a phase before leaving it, by side and phase (for metrics).
        self.phase_durations = Tally(("side", "phase"))

    @classmethod
    def open(cls, path: Path) -> Self:
        """Open (creating if needed) the database at `path`, checking it first.

        Raises:
            StoreError: the file is corrupt, missing or empty where deals were recorded (its
                marker says so), or was written by a newer version of this program; the
                message says how to recover.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        marker = path.with_name(path.name + HISTORY_MARKER_SUFFIX)
        if marker.exists() and (not path.exists() or path.stat().st_size == 0):
            raise StoreError(
                f"{path} is {'empty' if path.exists() else 'missing'}, but this node recorded "
                f"deals in it ({marker} says so): restore it from your backup (or a "
                f"{path.name}{BACKUP_INFIX}N file beside it); to start afresh and forget those "
                f"deals, delete {marker}"
            )
        try:
            connection = sqlite3.connect(path, isolation_level=None,
                                         timeout=BUSY_TIMEOUT_MS / 1000)
        except sqlite3.Error as exc:  # a directory there, no permission
            raise StoreError(f"{path}: cannot open the database ({exc}); it must be a file "
                             "this user can read and write") from exc
        try:
            version = _checked_version(connection, path)
        except BaseException:
            connection.close()
            raise
        if version == 0:
            # executescript commits first, so the script carries its own transaction.
            connection.executescript(
                f"BEGIN;{_SCHEMA}PRAGMA user_version={SCHEMA_VERSION};COMMIT;"
            )
        elif version in _MIGRATIONS:
            _backup(connection, path.with_name(f"{path.name}{BACKUP_INFIX}{version}"))
            for step in range(version, SCHEMA_VERSION):
                connection.executescript(
                    f"BEGIN;{_MIGRATIONS[step]}PRAGMA user_version={step + 1};COMMIT;"
                )
        elif version != SCHEMA_VERSION:
            connection.close()
            raise StoreError(
                f"{path}: schema version {version}, this program knows {SCHEMA_VERSION}"
            )
        path.chmod(0o600)
        store = cls(connection, marker, path)
        if connection.execute("SELECT 1 FROM deals LIMIT 1").fetchone() is not None:
            store._mark()
        return store

    def _mark(self) -> None:
        """Note beside the database that it holds deal history, so that losing the file is
        noticed at the next start instead of silently starting a fresh one."""
        if not self._marked:
            self._marker.write_text("this node's database holds deal history; do not delete "
                                    "this file unless you mean to forget it\n")
            self._marker.chmod(0o600)
            self._marked = True

    def close(self) -> None:
        self._db.close()

    # --- writes -------------------------------------------------------------------------

    def insert(
        self, record: DealRecord, detail: DealDetail, *, chain_id: int | None = None
    ) -> None:
        """Store a new deal on `chain_id` (its first phase is logged as a transition from
        nothing)."""
        with _transaction(self._db):
            self._db.execute(
                "INSERT INTO deals (key, side, phase, phase_since_ms, created_ms, expires_ms, "
                "result_deadline_ms, detail, chain_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record.key, record.side.value, record.phase.value, record.phase_since_ms,
                 record.created_ms, record.expires_ms, record.result_deadline_ms,
                 encode_detail(detail), chain_id),
            )
            self._log(record, None, None)
        self._mark()

    def update(
        self, record: DealRecord, detail: DealDetail, event: Event | None = None
    ) -> None:
        """Replace a deal's record and detail; a phase change is logged with `event`."""
        with _transaction(self._db):
            row = self._db.execute(
                "SELECT phase, phase_since_ms FROM deals WHERE key = ?", (record.key,)
            ).fetchone()
            if row is None:
                raise StoreError(f"no deal {record.key}")
            self._db.execute(
                "UPDATE deals SET phase = ?, phase_since_ms = ?, result_deadline_ms = ?, "
                "detail = ? WHERE key = ?",
                (record.phase.value, record.phase_since_ms, record.result_deadline_ms,
                 encode_detail(detail), record.key),
            )
            if row[0] != record.phase.value:
                self._log(record, Phase(row[0]), event)
        if row[0] != record.phase.value:
            self.phase_durations.observe(
                (record.side.value, row[0]), (record.phase_since_ms - row[1]) / 1000
            )

    def put_result(self, key: str, output: bytes) -> None:
        with _local_faults():
            self._db.execute("INSERT OR REPLACE INTO results VALUES (?, ?)", (key, output))

    def put_result_file(self, key: str, path: Path, piece_bytes: int = 1 << 20) -> None:
        """`put_result` of a file's bytes, copied a piece at a time (sqlite's blob I/O): an
        output of tens of MiB never sits whole in memory."""
        size = path.stat().st_size
        with _transaction(self._db), path.open("rb") as fh:
            self._db.execute("INSERT OR REPLACE INTO results VALUES (?, zeroblob(?))",
                             (key, size))
            (rowid,) = self._db.execute("SELECT rowid FROM results WHERE key = ?",
                                        (key,)).fetchone()
            with self._db.blobopen("results", "output", rowid) as blob:
                while piece := fh.read(piece_bytes):
                    blob.write(piece)

    def _log(self, record: DealRecord, before: Phase | None, event: Event | None) -> None:
        self._db.execute(
            "INSERT INTO transitions (key, from_phase, to_phase, event, at_ms) "
            "VALUES (?, ?, ?, ?, ?)",
            (record.key, before.value if before else None, record.phase.value,
             event.value if event else None, record.phase_since_ms),
        )

    # --- reads --------------------------------------------------------------------------

    def get(self, key: str) -> StoredDeal[DealDetail] | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM deals WHERE key = ?", (key,)).fetchone()
        return None if row is None else _stored(row)

    def client_deal(self, key: str) -> StoredDeal[ClientDetail] | None:
        """`get` of a client's deal: None when there is none or it is a provider's."""
        stored = self.get(key)
        if stored is None or stored.record.side is not Side.CLIENT:
            return None
        return cast(StoredDeal[ClientDetail], stored)

    def provider_deal(self, key: str) -> StoredDeal[ProviderDetail] | None:
        """`get` of a provider's deal: None when there is none or it is a client's."""
        stored = self.get(key)
        if stored is None or stored.record.side is not Side.PROVIDER:
            return None
        return cast(StoredDeal[ProviderDetail], stored)

    def deals(
        self, side: Side | None = None, *, open_only: bool = False, newest: int | None = None
    ) -> list[StoredDeal[DealDetail]]:
        """Deals in creation order, optionally of one side, optionally only unfinished ones,
        optionally only the `newest` so many. A long-lived node holds thousands of finished
        deals: `open_only` leaves them in the database (the index on side and phase finds the
        open ones), and `newest` reads no more rows than it returns."""
        clauses, values = ["1"], []
        if side is not None:
            clauses.append("side = ?")
            values.append(side.value)
        elif open_only:  # the (side, phase) index finds the open deals of either side
            clauses.append(f"side IN ({', '.join('?' * len(Side))})")
            values.extend(s.value for s in Side)
        if open_only:
            clauses.append(f"phase IN ({', '.join('?' * len(_OPEN_PHASES))})")
            values.extend(_OPEN_PHASES)
        where = " AND ".join(clauses)
        if newest is None:
            return [_stored(row) for row in self._db.execute(
                f"SELECT {_COLUMNS} FROM deals WHERE {where} ORDER BY created_ms, key", values)]
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM deals WHERE {where} "
            "ORDER BY created_ms DESC, key DESC LIMIT ?", (*values, max(0, newest)),
        ).fetchall()
        return [_stored(row) for row in reversed(rows)]

    def deals_named(self, name: str, *, most: int) -> list[StoredDeal[DealDetail]]:
        """The deals `name` may mean: the one whose key is `name`, or whose on-chain deal ID
        is (for a `name` of 0x and hex digits); else at most `most` of those whose key or
        deal ID starts with it. Keys are matched in the database (a provider's key is its deal
        ID); a client's deal ID is in its detail, of which only that field is read."""
        text = name.strip().lower()
        wanted = text.removeprefix("0x")
        if not wanted:
            return []
        names = {row[0]: row[0] for row in self._db.execute(
            "SELECT key FROM deals WHERE substr(key, 1, ?) = ?", (len(wanted), wanted))}
        if text.startswith("0x") and all(c in "0123456789abcdef" for c in wanted):
            for key, blob in self._db.execute(
                "SELECT key, detail FROM deals WHERE side = ?", (Side.CLIENT.value,)
            ):
                deal_id = msgpack.unpackb(blob, raw=False, strict_map_key=False).get("deal_id")
                if isinstance(deal_id, bytes) and deal_id.hex().startswith(wanted):
                    names[key] = deal_id.hex()
        exact = [key for key in names if wanted in (key, names[key])]
        found = [self.get(key) for key in exact or sorted(names)[:most]]
        return sorted((d for d in found if d is not None),
                      key=lambda d: (d.record.created_ms, d.record.key))

    def client_deals(self, *, open_only: bool = False) -> list[StoredDeal[ClientDetail]]:
        return cast(list[StoredDeal[ClientDetail]], self.deals(Side.CLIENT, open_only=open_only))

    def provider_deals(self, *, open_only: bool = False) -> list[StoredDeal[ProviderDetail]]:
        return cast(list[StoredDeal[ProviderDetail]],
                    self.deals(Side.PROVIDER, open_only=open_only))

    def phase_counts(self) -> list[tuple[str, str, int]]:
        """(side, phase, number of deals) for every side and phase that has deals."""
        return [
            (str(side), str(phase), int(count))
            for side, phase, count in self._db.execute(
                "SELECT side, phase, COUNT(*) FROM deals GROUP BY side, phase ORDER BY side, phase"
            )
        ]

    def client_keys_where(
        self, wanted: Callable[[dict[str, Any]], bool]
    ) -> tuple[list[str], int]:
        """The client deals whose stored detail (a map of the fields that are set, by name)
        `wanted` accepts, and the `changed_since` mark they are current to.

        Through a connection of its own, SCAN_BATCH_ROWS rows a statement: it may run in a
        worker thread while the node writes, so that a loop watching a few deals among
        hundreds of thousands finds them at start without stalling the node."""
        uri = f"file:{urllib.parse.quote(str(self._path))}?mode=ro"  # '?' or '#' in a home
        with contextlib.closing(sqlite3.connect(uri, uri=True,
                                                timeout=BUSY_TIMEOUT_MS / 1000)) as db:
            (mark,) = db.execute("SELECT COALESCE(MAX(seq), 0) FROM transitions").fetchone()
            keys: list[str] = []
            after = 0
            # By rowid alone: with `side = ?` sqlite would take the (side, phase) index and
            # sort every client row again for each statement.
            while rows := db.execute(
                "SELECT rowid, key, side, detail FROM deals WHERE rowid > ? ORDER BY rowid "
                "LIMIT ?", (after, SCAN_BATCH_ROWS),
            ).fetchall():
                after = rows[-1][0]
                for _, key, side, blob in rows:
                    if side != Side.CLIENT.value:
                        continue
                    values = msgpack.unpackb(blob, raw=False, strict_map_key=False)
                    if isinstance(values, dict) and wanted(values):
                        keys.append(key)
        return keys, int(mark)

    def changed_since(self, mark: int) -> tuple[list[str], int]:
        """The deals made or moved to another phase after `mark` (0: every deal), and the mark
        to pass next time: a loop that watches a few deals among thousands reads only those
        that changed."""
        rows = self._db.execute(  # a range of the rowid: no more rows read than changed
            "SELECT key, seq FROM transitions WHERE seq > ? ORDER BY seq", (mark,)
        ).fetchall()
        return list(dict.fromkeys(key for key, _ in rows)), rows[-1][1] if rows else mark

    def transitions(self, key: str) -> list[Transition]:
        rows = self._db.execute(
            "SELECT from_phase, to_phase, event, at_ms FROM transitions WHERE key = ? "
            "ORDER BY seq",
            (key,),
        ).fetchall()
        return [
            Transition(Phase(f) if f else None, Phase(t), Event(e) if e else None, at)
            for f, t, e, at in rows
        ]

    def result(self, key: str) -> bytes | None:
        row = self._db.execute("SELECT output FROM results WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])


_COLUMNS = ("key, side, phase, phase_since_ms, created_ms, expires_ms, result_deadline_ms, "
            "detail, chain_id")
_OPEN_PHASES = [phase.value for phase in Phase if not phase.is_final]


def _stored(row: tuple[Any, ...]) -> StoredDeal[DealDetail]:
    key, side, phase, since, created, expires, deadline, detail, chain_id = row
    record = DealRecord(key, Side(side), Phase(phase), since, created, expires, deadline)
    return StoredDeal(record, decode_detail(record.side, detail), chain_id)


def _checked_version(connection: sqlite3.Connection, path: Path) -> int:
    """The schema version, after sqlite's quick integrity check of every page.

    Raises:
        StoreError: the file is not a database, or a page or index is damaged.
    """
    advice = (f"restore it from your backup (or a {path.name}{BACKUP_INFIX}N file beside it), "
              "or move it away to start a new one (its deals are then forgotten)")
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA foreign_keys=ON")
        problems = [row[0] for row in connection.execute("PRAGMA quick_check(5)")]
        version = int(connection.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is corrupt or not a database ({exc}): {advice}") from exc
    if problems != ["ok"]:
        raise StoreError(f"{path} is corrupt (sqlite quick_check: {problems[0]}): {advice}")
    return version


def _backup(connection: sqlite3.Connection, target: Path) -> None:
    """A consistent copy of the whole database, taken before a schema migration."""
    with contextlib.closing(sqlite3.connect(target)) as copy:
        connection.backup(copy)
    target.chmod(0o600)


@contextmanager
def _local_faults() -> Iterator[None]:
    try:
        yield
    except sqlite3.OperationalError as exc:  # SQLITE_FULL, SQLITE_IOERR, SQLITE_READONLY...
        raise StoreUnavailable(f"cannot write the node's database: {exc} (free disk space "
                               "under the node's home; the node retries)") from exc


@contextmanager
def _transaction(connection: sqlite3.Connection) -> Iterator[None]:
    with _local_faults():
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
