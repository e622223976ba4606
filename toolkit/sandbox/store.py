"""The sandbox's state in one SQLite file under its data dir: decisions, conversions, counters and
the datafile being served. A restart with the same data dir loses nothing.

Dedup is the Event API's rule, enforced by the database: a unique index on
``(entity_id, uuid, timestamp)`` and ``INSERT OR IGNORE``; what was ignored is a duplicate.
One connection, guarded by a lock: the server thread writes, the caller's thread may read stats.
Only the dedup indexes are kept up to date on insert (ingest speed); the attribution and E3 queries
join on ``visitor_id`` through SQLite's automatic (per-query) indexes.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Store", "StoredDatafile", "DB_NAME", "DECISION_COLUMNS", "CONVERSION_COLUMNS"]

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
CREATE TABLE IF NOT EXISTS datafile (
    id INTEGER PRIMARY KEY CHECK (id = 1), text TEXT NOT NULL, etag TEXT NOT NULL,
    last_modified REAL NOT NULL, revision TEXT NOT NULL
);
"""

_INSERT_DECISION = (
    f"INSERT OR IGNORE INTO decisions ({', '.join(DECISION_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(DECISION_COLUMNS))})"
)
_INSERT_CONVERSION = (
    f"INSERT OR IGNORE INTO conversions ({', '.join(CONVERSION_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(CONVERSION_COLUMNS))})"
)
_BUMP = "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + excluded.value"


@dataclass(frozen=True)
class StoredDatafile:
    text: str
    etag: str
    last_modified: float  # epoch seconds
    revision: str


class Store:
    """SQLite state of one sandbox (WAL; one ``executemany`` per table per body)."""

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.data_dir / DB_NAME
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA cache_size=-65536")  # 64 MB: the dedup indexes take random keys
        self._db.executescript(_SCHEMA)
        for old in ("decisions_by_experiment", "conversions_by_visitor"):  # state dirs of earlier versions
            self._db.execute(f"DROP INDEX IF EXISTS {old}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------ writes

    def ingest(
        self,
        decisions: Sequence[tuple[Any, ...]],
        conversions: Sequence[tuple[Any, ...]],
        counters: Mapping[str, int],
    ) -> tuple[int, int]:
        """Insert one body's rows in one transaction; return (stored, duplicates).

        ``counters`` are bumped in the same transaction, plus ``events.stored`` and
        ``events.duplicates``.
        """
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN")
            try:
                stored = 0
                if decisions:
                    cur.executemany(_INSERT_DECISION, decisions)
                    stored += max(cur.rowcount, 0)
                if conversions:
                    cur.executemany(_INSERT_CONVERSION, conversions)
                    stored += max(cur.rowcount, 0)
                duplicates = len(decisions) + len(conversions) - stored
                bumps = dict(counters)
                bumps["events.stored"] = bumps.get("events.stored", 0) + stored
                bumps["events.duplicates"] = bumps.get("events.duplicates", 0) + duplicates
                cur.executemany(_BUMP, [(k, v) for k, v in bumps.items() if v])
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return stored, duplicates

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
            for table in ("decisions", "conversions", "counters"):
                self._db.execute(f"DELETE FROM {table}")
            self._db.execute("COMMIT")

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

    # ------------------------------------------------------------------ reads

    def datafile(self) -> StoredDatafile | None:
        row = self.query("SELECT text, etag, last_modified, revision FROM datafile WHERE id = 1")
        return StoredDatafile(*row[0]) if row else None

    def counters(self) -> dict[str, int]:
        return dict(self.query("SELECT name, value FROM counters ORDER BY name"))

    def query(self, sql: str, params: Iterable[Any] | Mapping[str, Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def query_columns(self, sql: str, params: Iterable[Any] | Mapping[str, Any] = ()) -> tuple[list[str], list[tuple]]:
        with self._lock:
            cur = self._db.execute(sql, params)
            return [d[0] for d in cur.description], cur.fetchall()
