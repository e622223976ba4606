"""The sandbox's state in SQLite under its data dir: decisions, conversions, counters and the
datafile being served (``sandbox.sqlite``), and the inbox of bodies not yet deduplicated
(``inbox.sqlite``). A restart with the same data dir loses nothing.

Dedup is the Event API's rule, enforced by the database: a unique index on
``(entity_id, uuid, timestamp)`` and ``INSERT OR IGNORE``; what was ignored is a duplicate.

:meth:`Store.append` commits a body to the inbox (a 204 means this commit is done: the events are
in the store); :meth:`Store.settle` moves the inbox into the deduplicated tables in bulk, in arrival
order, and counts ``events.stored`` / ``events.duplicates`` (see :mod:`.inbox` for why). Every read
settles first, so what anyone observes is exactly what immediate dedup would show. Appends settle
once the inbox holds ``settle_rows`` rows: inline, or with ``background=True`` (the server) in a
thread of the store's own, so the event loop goes on parsing while SQLite works.

Two connections, each behind a lock: the inbox writer (appends, counter bumps) and the main one
(settle, reads, reset, datafile). Only the dedup indexes are kept up to date on insert; the
attribution and E3 queries join on ``visitor_id`` through SQLite's automatic (per-query) indexes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .inbox import Inbox, connect, settle
from .schema import (
    BODY_COLUMNS,
    CONVERSION_COLUMNS,
    CONVERSION_EVENT_COLUMNS,
    DB_NAME,
    DECISION_COLUMNS,
    DECISION_EVENT_COLUMNS,
    INBOX_NAME,
    MAIN_SCHEMA,
)

__all__ = ["Store", "StoredDatafile", "DB_NAME", "INBOX_NAME", "DECISION_COLUMNS", "CONVERSION_COLUMNS",
           "BODY_COLUMNS", "DECISION_EVENT_COLUMNS", "CONVERSION_EVENT_COLUMNS", "SETTLE_ROWS"]

log = logging.getLogger(__name__)

SETTLE_ROWS = 100_000  # appends settle once the inbox holds this many rows (~0.3 s of SQLite work)


@dataclass(frozen=True)
class StoredDatafile:
    text: str
    etag: str
    last_modified: float  # epoch seconds
    revision: str


class Store:
    """SQLite state of one sandbox (WAL; an inbox settled in bulk: see the module doc)."""

    def __init__(self, data_dir: str | Path, *, settle_rows: int = SETTLE_ROWS, background: bool = False) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.data_dir / DB_NAME
        self.settle_rows = settle_rows
        self._lock = threading.Lock()  # main connection
        self._inbox_lock = threading.Lock()
        self._db = connect(self.path)
        self._db.execute("PRAGMA cache_size=-65536")  # 64 MB: the dedup indexes take random keys
        self._db.executescript(MAIN_SCHEMA)
        for old in ("decisions_by_experiment", "conversions_by_visitor"):  # state dirs of earlier versions
            self._db.execute(f"DROP INDEX IF EXISTS {old}")
        self._inbox = Inbox(self.data_dir / INBOX_NAME)
        self._db.execute("ATTACH DATABASE ? AS inbox", (str(self._inbox.path),))
        self._pending = self._inbox.pending_rows()  # appended before a restart, not settled yet
        self._wake = threading.Event()
        self._closing = False
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._settler, daemon=True, name=f"sandbox-settle-{self.data_dir.name}")
            self._thread.start()

    def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock, self._inbox_lock:
            settle(self._db)
            self._db.close()
            self._inbox.close()

    # ------------------------------------------------------------------ writes

    def append(
        self,
        decisions: Sequence[tuple[Any, ...]],
        conversions: Sequence[tuple[Any, ...]],
        counters: Mapping[str, int],
    ) -> None:
        """Commit one body's rows to the inbox and bump ``counters``, in one transaction.

        The rows are :class:`~toolkit.sandbox.ingest.Rows` (event columns, and the body-level
        ``header``). Dedup and ``events.stored`` / ``events.duplicates`` follow at the next settle.
        """
        with self._inbox_lock:
            self._inbox.append(decisions, conversions, counters)
        self._pending += len(decisions) + len(conversions)
        if self._pending >= self.settle_rows:
            if self._thread is not None:
                self._wake.set()
            else:
                self.settle()

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
        with self._inbox_lock:
            self._inbox.rotate()
        stored, duplicates, moved = settle(self._db, self._inbox_lock)
        self._pending = max(0, self._pending - moved)
        return stored, duplicates

    def _settler(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._closing:
                return
            try:
                self.settle()
            except Exception:  # the next read settles again and raises to its caller
                log.exception("sandbox: background settle failed")

    def bump(self, counters: Mapping[str, int]) -> None:
        if any(counters.values()):
            with self._inbox_lock:
                self._inbox.bump(counters)

    def reset(self) -> None:
        """Forget every event and counter (the datafile stays)."""
        with self._lock, self._inbox_lock:
            self._inbox.reset()
            self._db.execute("BEGIN")
            for table in ("decisions", "conversions", "counters"):
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
        with self._lock:
            row = self._db.execute("SELECT text, etag, last_modified, revision FROM datafile WHERE id = 1").fetchall()
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
