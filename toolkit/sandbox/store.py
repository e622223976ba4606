"""The sandbox's state in one SQLite file under its data dir: decisions, conversions, counters and
the datafile being served. A restart with the same data dir loses nothing.

Dedup is the Event API's rule, enforced by the database: a unique index on
``(entity_id, uuid, timestamp)`` and ``INSERT OR IGNORE``; what was ignored is a duplicate.

Two steps, for ingest speed (event uuids are random keys: inserting one body's 1000 rows into the
dedup index dirties ~1000 index pages, and every commit wrote them all to the WAL):

- :meth:`Store.append` commits a body's rows to *inbox* tables with no index (one row per body
  holds the body-level values) - a 204 means this commit is done, so the events are in the store;
- :meth:`Store.settle` moves everything in the inbox, in arrival order, into ``decisions`` and
  ``conversions`` with ``INSERT OR IGNORE`` in one transaction, and counts ``events.stored`` and
  ``events.duplicates``. Every read settles first, and so does an append once the inbox holds
  ``settle_rows`` rows, so what anyone observes is exactly what immediate dedup would show.

One connection, guarded by a lock: the server thread writes, the caller's thread may read stats.
Only the dedup indexes are kept up to date on insert; the attribution and E3 queries join on
``visitor_id`` through SQLite's automatic (per-query) indexes.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

__all__ = ["Store", "StoredDatafile", "DB_NAME", "DECISION_COLUMNS", "CONVERSION_COLUMNS", "BODY_COLUMNS",
           "DECISION_EVENT_COLUMNS", "CONVERSION_EVENT_COLUMNS", "SETTLE_ROWS"]

DB_NAME = "sandbox.sqlite"

DECISION_COLUMNS = (
    "entity_id", "uuid", "timestamp", "visitor_id", "campaign_id", "experiment_id", "variation_id",
    "flag_key", "rule_key", "rule_type", "variation_key", "enabled", "running", "attributes",
    "revision", "client_name", "client_version", "account_id", "received_at",
)
CONVERSION_COLUMNS = (
    "entity_id", "uuid", "timestamp", "key", "visitor_id", "revenue", "value", "tags", "attributes",
    "revision", "client_name", "client_version", "account_id", "received_at",
)

BODY_COLUMNS = ("revision", "client_name", "client_version", "account_id", "received_at")
DECISION_EVENT_COLUMNS = DECISION_COLUMNS[: -len(BODY_COLUMNS)]  # what check_body's rows hold
CONVERSION_EVENT_COLUMNS = CONVERSION_COLUMNS[: -len(BODY_COLUMNS)]
SETTLE_ROWS = 200_000  # an append settles the inbox once it holds this many rows (~0.5 s of work)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    entity_id TEXT NOT NULL, uuid TEXT NOT NULL, timestamp INTEGER NOT NULL, visitor_id TEXT NOT NULL,
    campaign_id TEXT NOT NULL, experiment_id TEXT NOT NULL, variation_id TEXT NOT NULL,
    flag_key TEXT, rule_key TEXT, rule_type TEXT, variation_key TEXT, enabled INTEGER,
    running INTEGER NOT NULL,            -- the experiment was running (datafile in force at receipt)
    attributes BLOB, revision TEXT, client_name TEXT, client_version TEXT, account_id TEXT,
    received_at REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS decisions_dedup ON decisions (entity_id, uuid, timestamp);
CREATE TABLE IF NOT EXISTS conversions (
    entity_id TEXT NOT NULL, uuid TEXT NOT NULL, timestamp INTEGER NOT NULL, key TEXT NOT NULL,
    visitor_id TEXT NOT NULL, revenue INTEGER, value REAL, tags BLOB, attributes BLOB,
    revision TEXT, client_name TEXT, client_version TEXT, account_id TEXT, received_at REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS conversions_dedup ON conversions (entity_id, uuid, timestamp);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
-- the inbox: bodies committed but not yet deduplicated into decisions / conversions (see settle)
CREATE TABLE IF NOT EXISTS inbox_bodies (
    seq INTEGER PRIMARY KEY, revision TEXT, client_name TEXT, client_version TEXT, account_id TEXT,
    received_at REAL NOT NULL,
    decisions_from INTEGER NOT NULL, decisions_to INTEGER NOT NULL,        -- rowid range in inbox_decisions
    conversions_from INTEGER NOT NULL, conversions_to INTEGER NOT NULL     -- rowid range in inbox_conversions
);
CREATE TABLE IF NOT EXISTS inbox_decisions (
    entity_id, uuid, timestamp, visitor_id, campaign_id, experiment_id, variation_id,
    flag_key, rule_key, rule_type, variation_key, enabled, running, attributes
);
CREATE TABLE IF NOT EXISTS inbox_conversions (
    entity_id, uuid, timestamp, key, visitor_id, revenue, value, tags, attributes
);
CREATE TABLE IF NOT EXISTS datafile (
    id INTEGER PRIMARY KEY CHECK (id = 1), text TEXT NOT NULL, etag TEXT NOT NULL,
    last_modified REAL NOT NULL, revision TEXT NOT NULL
);
"""



_MAX_PARAMS = 999  # SQLite's smallest compiled-in limit of bound parameters per statement


def _stage_sql(table: str, columns: tuple[str, ...], n_rows: int) -> str:
    row = f"({', '.join('?' * len(columns))})"
    return f"INSERT INTO inbox_{table} ({', '.join(columns)}) VALUES {', '.join([row] * n_rows)}"


def _stage(cur: sqlite3.Cursor, table: str, columns: tuple[str, ...], rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert rows, many per statement: executemany's per-row cost was a third of an append."""
    per = _MAX_PARAMS // len(columns)
    full = len(rows) - len(rows) % per
    if full:
        cur.executemany(_stage_sql(table, columns, per),
                        [list(chain.from_iterable(rows[i:i + per])) for i in range(0, full, per)])
    if full < len(rows):
        cur.executemany(_stage_sql(table, columns, 1), rows[full:])


def _settle_sql(table: str, event_columns: tuple[str, ...]) -> str:
    """One body's inbox rows, in arrival order, into the deduplicated table."""
    return (f"INSERT OR IGNORE INTO {table} ({', '.join(event_columns + BODY_COLUMNS)}) "
            f"SELECT {', '.join(event_columns)}, {', '.join(':' + c for c in BODY_COLUMNS)} "
            f"FROM inbox_{table} WHERE rowid BETWEEN :lo AND :hi ORDER BY rowid")


_SETTLE_DECISIONS = _settle_sql("decisions", DECISION_EVENT_COLUMNS)
_SETTLE_CONVERSIONS = _settle_sql("conversions", CONVERSION_EVENT_COLUMNS)
_STAGE_BODY = (f"INSERT INTO inbox_bodies ({', '.join(BODY_COLUMNS)}, decisions_from, decisions_to, conversions_from, "
               f"conversions_to) VALUES ({', '.join('?' * (len(BODY_COLUMNS) + 4))})")
_BUMP = "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + excluded.value"


@dataclass(frozen=True)
class StoredDatafile:
    text: str
    etag: str
    last_modified: float  # epoch seconds
    revision: str


class Store:
    """SQLite state of one sandbox (WAL; appends to an inbox, settled in bulk: see the module doc)."""

    def __init__(self, data_dir: str | Path, *, settle_rows: int = SETTLE_ROWS) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.data_dir / DB_NAME
        self.settle_rows = settle_rows
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA cache_size=-65536")  # 64 MB: the dedup indexes take random keys
        self._db.executescript(_SCHEMA)
        for old in ("decisions_by_experiment", "conversions_by_visitor"):  # state dirs of earlier versions
            self._db.execute(f"DROP INDEX IF EXISTS {old}")
        self._pending = self._db.execute(  # rows appended before a restart and not settled yet
            "SELECT COALESCE(SUM(decisions_to - decisions_from + conversions_to - conversions_from + 2), 0) "
            "FROM inbox_bodies").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._settle()
            self._db.close()

    # ------------------------------------------------------------------ writes

    def append(
        self,
        decisions: Sequence[tuple[Any, ...]],
        conversions: Sequence[tuple[Any, ...]],
        counters: Mapping[str, int],
    ) -> None:
        """Commit one body's rows to the inbox and bump ``counters``, in one transaction.

        The rows are :class:`~toolkit.sandbox.ingest.Rows` (event columns, and the body-level
        ``header``). Dedup and the ``events.stored`` / ``events.duplicates`` counters follow at the
        next settle: the next read, or this append when the inbox reaches ``settle_rows`` rows.
        """
        header = _header(decisions, conversions)
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN")
            try:
                if decisions or conversions:
                    d_end, c_end = cur.execute(
                        "SELECT COALESCE(MAX(rowid), 0) FROM inbox_decisions "
                        "UNION ALL SELECT COALESCE(MAX(rowid), 0) FROM inbox_conversions").fetchall()
                    _stage(cur, "decisions", DECISION_EVENT_COLUMNS, decisions)
                    _stage(cur, "conversions", CONVERSION_EVENT_COLUMNS, conversions)
                    d0, c0 = d_end[0] + 1, c_end[0] + 1
                    cur.execute(_STAGE_BODY, (*header, d0, d0 + len(decisions) - 1, c0, c0 + len(conversions) - 1))
                rows = [(k, v) for k, v in counters.items() if v]
                if rows:
                    cur.executemany(_BUMP, rows)
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            self._pending += len(decisions) + len(conversions)
            if self._pending >= self.settle_rows:
                self._settle()

    def ingest(
        self,
        decisions: Sequence[tuple[Any, ...]],
        conversions: Sequence[tuple[Any, ...]],
        counters: Mapping[str, int],
    ) -> tuple[int, int]:
        """Append one body's rows and settle at once; return (stored, duplicates) of that settle.

        ``counters`` are bumped too, plus ``events.stored`` and ``events.duplicates``.
        """
        self.append(decisions, conversions, counters)
        return self.settle()

    def settle(self) -> tuple[int, int]:
        """Deduplicate the inbox into decisions / conversions; return (stored, duplicates)."""
        with self._lock:
            return self._settle()

    def _settle(self) -> tuple[int, int]:
        bodies = self._db.execute(
            f"SELECT {', '.join(BODY_COLUMNS)}, decisions_from, decisions_to, conversions_from, conversions_to "
            "FROM inbox_bodies ORDER BY seq").fetchall()
        if not bodies:
            return 0, 0
        cur = self._db.cursor()
        cur.execute("BEGIN")
        try:
            stored = staged = 0
            for *header, d_lo, d_hi, c_lo, c_hi in bodies:
                params = dict(zip(BODY_COLUMNS, header, strict=True))
                for sql, lo, hi in ((_SETTLE_DECISIONS, d_lo, d_hi), (_SETTLE_CONVERSIONS, c_lo, c_hi)):
                    if hi >= lo:
                        cur.execute(sql, {**params, "lo": lo, "hi": hi})
                        stored += cur.rowcount
                        staged += hi - lo + 1
            bumps = [("events.stored", stored), ("events.duplicates", staged - stored)]
            cur.executemany(_BUMP, [b for b in bumps if b[1]])
            for table in ("inbox_bodies", "inbox_decisions", "inbox_conversions"):
                cur.execute(f"DELETE FROM {table}")
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        self._pending = 0
        return stored, staged - stored

    def bump(self, counters: Mapping[str, int]) -> None:
        rows = [(k, v) for k, v in counters.items() if v]
        if not rows:
            return
        with self._lock:
            self._db.executemany(_BUMP, rows)

    def reset(self) -> None:
        """Forget every event and counter (the datafile stays)."""
        with self._lock:
            self._db.execute("BEGIN")
            for table in ("decisions", "conversions", "counters", "inbox_bodies", "inbox_decisions",
                          "inbox_conversions"):
                self._db.execute(f"DELETE FROM {table}")
            self._db.execute("COMMIT")
            self._pending = 0

    def set_datafile(self, text: str, etag: str, revision: str, last_modified: float | None = None) -> StoredDatafile:
        stamp = float(int(time.time() if last_modified is None else last_modified))  # HTTP dates: whole seconds
        with self._lock:
            self._db.execute(
                "INSERT INTO datafile (id, text, etag, last_modified, revision) VALUES (1, ?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET text = excluded.text, etag = excluded.etag, "
                "last_modified = excluded.last_modified, revision = excluded.revision",
                (text, etag, stamp, revision),
            )
        return StoredDatafile(text, etag, stamp, revision)

    # ------------------------------------------------------------------ reads (each settles first)

    def datafile(self) -> StoredDatafile | None:
        row = self.query("SELECT text, etag, last_modified, revision FROM datafile WHERE id = 1")
        return StoredDatafile(*row[0]) if row else None

    def counters(self) -> dict[str, int]:
        return dict(self.query("SELECT name, value FROM counters ORDER BY name"))

    def query(self, sql: str, params: Iterable[Any] | Mapping[str, Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            self._settle()
            return self._db.execute(sql, params).fetchall()

    def query_columns(self, sql: str, params: Iterable[Any] | Mapping[str, Any] = ()) -> tuple[list[str], list[tuple]]:
        with self._lock:
            self._settle()
            cur = self._db.execute(sql, params)
            return [d[0] for d in cur.description], cur.fetchall()


def _header(decisions: Sequence[tuple[Any, ...]], conversions: Sequence[tuple[Any, ...]]) -> tuple[Any, ...]:
    """The body-level values (BODY_COLUMNS) of a body's rows."""
    for rows in (decisions, conversions):
        header = getattr(rows, "header", None)
        if header is not None:
            if len(header) != len(BODY_COLUMNS):
                raise ValueError(f"rows header must hold {', '.join(BODY_COLUMNS)}")
            return tuple(header)
    if decisions or conversions:
        raise TypeError("rows must be toolkit.sandbox.ingest.Rows (event columns plus a body-level header)")
    return (None, None, None, None, 0.0)
