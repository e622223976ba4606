"""The inbox: where ``POST /v1/events`` commits a body (no index: cheap), and the settle step that
moves it, in arrival order, into the deduplicated tables of the main file.

Why two steps: event uuids are random keys, so inserting one body's 1000 rows into the dedup index
dirtied ~1000 index pages, and every per-body commit wrote them all to the WAL (4 MB per body).
Settling many bodies in one transaction touches each index page once.

Why two files: SQLite has one writer per file. With the inbox in its own file, appends (the event
loop) never wait for a settle (a background thread; SQLite releases the GIL while it works).

Why two sets of row tables (:data:`~.schema.PARTS`): a settle first turns appends to the other set
(:meth:`Inbox.rotate`), moves every body it sees, and then empties the set it drained with a
``DELETE`` without ``WHERE`` (SQLite drops whole pages; deleting row ranges cost ~0.5 us a row and
held the inbox's write lock meanwhile, so appends stalled in SQLite's busy sleeps). The prune runs
under the caller's inbox lock, so an append waits on a Python lock for a few ms, never polls. The
inbox WAL is checkpointed by the settle; appends only past 2048 pages (counter-only appends never
call for a settle).

Crash safety: a settle commits the moved rows and the ``settled`` marks in the main file in one
transaction, then prunes the inbox; a crash in between leaves rows at or below the marks, which
the next settle prunes without moving them again. Sequence numbers are AUTOINCREMENT, so they
never go back below a mark; a set of tables is emptied only once no body row points into it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from itertools import chain
from pathlib import Path
from typing import Any

from .schema import BODY_COLUMNS, BUMP, CONVERSION_EVENT_COLUMNS, DECISION_EVENT_COLUMNS, INBOX_SCHEMA, PARTS

__all__ = ["Inbox", "settle", "header_of"]

_MAX_PARAMS = 999  # SQLite's smallest compiled-in limit of bound parameters per statement
_STAGE_BODY = (f"INSERT INTO bodies ({', '.join(BODY_COLUMNS)}, decisions_from, decisions_to, conversions_from, "
               f"conversions_to, part) VALUES ({', '.join('?' * (len(BODY_COLUMNS) + 5))})")


def connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=60)
    db.execute("PRAGMA page_size=16384")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def header_of(decisions: Sequence[tuple[Any, ...]], conversions: Sequence[tuple[Any, ...]]) -> tuple[Any, ...]:
    """The body-level values (BODY_COLUMNS) of a body's rows (:class:`~toolkit.sandbox.ingest.Rows`)."""
    for rows in (decisions, conversions):
        header = getattr(rows, "header", None)
        if header is not None:
            if len(header) != len(BODY_COLUMNS):
                raise ValueError(f"rows header must hold {', '.join(BODY_COLUMNS)}")
            return tuple(header)
    if decisions or conversions:
        raise TypeError("rows must be toolkit.sandbox.ingest.Rows (event columns plus a body-level header)")
    return (None, None, None, None, 0.0)


def _stage_sql(table: str, columns: tuple[str, ...], n_rows: int) -> str:
    row = f"({', '.join('?' * len(columns))})"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([row] * n_rows)}"


def _stage(cur: sqlite3.Cursor, table: str, columns: tuple[str, ...], rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert rows, many per statement: executemany's per-row cost was a third of an append."""
    per = _MAX_PARAMS // len(columns)
    full = len(rows) - len(rows) % per
    if full:
        cur.executemany(_stage_sql(table, columns, per),
                        [list(chain.from_iterable(rows[i:i + per])) for i in range(0, full, per)])
    if full < len(rows):
        cur.executemany(_stage_sql(table, columns, 1), rows[full:])


class Inbox:
    """The writer of ``inbox.sqlite`` (one connection; the caller serializes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = connect(path)
        # the settle checkpoints (see the module doc); this is only a bound for counter-only appends
        # (400s, faults), which never call for a settle
        self.db.execute("PRAGMA wal_autocheckpoint=2048")
        columns = {r[1] for r in self.db.execute("PRAGMA table_info(bodies)")}
        if columns and "part" not in columns:  # an earlier version's inbox: its rows are in set 0
            self.db.execute("ALTER TABLE bodies ADD COLUMN part INTEGER NOT NULL DEFAULT 0")
        self.db.executescript(INBOX_SCHEMA)
        self.part = 0  # the set of tables appends go to

    def rotate(self) -> None:
        """Send the next appends to the other set of tables (the caller holds the inbox lock)."""
        self.part ^= 1

    def close(self) -> None:
        self.db.close()

    def append(self, decisions: Sequence[tuple[Any, ...]], conversions: Sequence[tuple[Any, ...]],
               counters: Mapping[str, int]) -> None:
        """One body's rows and its counter increments, in one committed transaction."""
        header = header_of(decisions, conversions)
        part = self.part
        d_table, c_table = PARTS[part]
        cur = self.db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            if decisions or conversions:
                (d_end,), (c_end,) = cur.execute(
                    f"SELECT COALESCE(MAX(rowid), 0) FROM {d_table} UNION ALL "
                    f"SELECT COALESCE(MAX(rowid), 0) FROM {c_table}").fetchall()
                _stage(cur, d_table, DECISION_EVENT_COLUMNS, decisions)
                _stage(cur, c_table, CONVERSION_EVENT_COLUMNS, conversions)
                cur.execute(_STAGE_BODY, (*header, d_end + 1, d_end + len(decisions),
                                          c_end + 1, c_end + len(conversions), part))
            self._count(cur, counters)
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise

    def bump(self, counters: Mapping[str, int]) -> None:
        cur = self.db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        self._count(cur, counters)
        cur.execute("COMMIT")

    @staticmethod
    def _count(cur: sqlite3.Cursor, counters: Mapping[str, int]) -> None:
        rows = [(k, v) for k, v in counters.items() if v]
        if rows:
            cur.executemany("INSERT INTO counts (name, value) VALUES (?, ?)", rows)

    def pending_rows(self) -> int:
        return self.db.execute("SELECT COALESCE(SUM(decisions_to - decisions_from + conversions_to - conversions_from "
                               "+ 2), 0) FROM bodies").fetchone()[0]

    def reset(self) -> None:
        """Empty the inbox (sequence numbers go on: the settled marks stay valid)."""
        self.db.execute("BEGIN IMMEDIATE")
        for table in ("bodies", "counts", *(t for tables in PARTS for t in tables)):
            self.db.execute(f"DELETE FROM {table}")
        self.db.execute("COMMIT")


def _settle_sql(table: str, source: str, event_columns: tuple[str, ...]) -> str:
    """One body's inbox rows, in arrival order, into the deduplicated table."""
    return (f"INSERT OR IGNORE INTO main.{table} ({', '.join(event_columns + BODY_COLUMNS)}) "
            f"SELECT {', '.join(event_columns)}, {', '.join(':' + c for c in BODY_COLUMNS)} "
            f"FROM inbox.{source} WHERE rowid BETWEEN :lo AND :hi ORDER BY rowid")


_SETTLE = [(_settle_sql("decisions", d, DECISION_EVENT_COLUMNS), _settle_sql("conversions", c, CONVERSION_EVENT_COLUMNS))
           for d, c in PARTS]


def settle(db: sqlite3.Connection, inbox_lock: AbstractContextManager | None = None) -> tuple[int, int, int]:
    """Move the inbox (attached to ``db`` as ``inbox``) into main; return (stored, duplicates, rows moved).

    ``inbox_lock`` is what serializes the inbox's writer (held while pruning); rotate the inbox
    before, so that the set of tables drained here can be emptied after."""
    cur = db.cursor()
    cur.execute("BEGIN")  # deferred: IMMEDIATE would lock the inbox too; this connection is main's only writer
    try:
        marks = dict(cur.execute("SELECT name, seq FROM main.settled").fetchall())
        body_mark, count_mark = marks.get("bodies", 0), marks.get("counts", 0)
        bodies = cur.execute(
            f"SELECT seq, {', '.join(BODY_COLUMNS)}, decisions_from, decisions_to, conversions_from, conversions_to, "
            "part FROM inbox.bodies WHERE seq > ? ORDER BY seq", (body_mark,)).fetchall()
        (count_top,) = cur.execute("SELECT COALESCE(MAX(seq), ?) FROM inbox.counts", (count_mark,)).fetchone()
        stored = staged = 0
        for seq, *rest in bodies:
            params = dict(zip(BODY_COLUMNS, rest[:len(BODY_COLUMNS)], strict=True))
            d_lo, d_hi, c_lo, c_hi, part = rest[len(BODY_COLUMNS):]
            for sql, lo, hi in zip(_SETTLE[part], (d_lo, c_lo), (d_hi, c_hi), strict=True):
                if hi >= lo:
                    cur.execute(sql, {**params, "lo": lo, "hi": hi})
                    stored += cur.rowcount
                    staged += hi - lo + 1
            body_mark = seq
        cur.execute("INSERT INTO main.counters (name, value) SELECT name, SUM(value) FROM inbox.counts "
                    "WHERE seq > ? AND seq <= ? GROUP BY name "
                    "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (count_mark, count_top))
        cur.executemany(BUMP.replace("INTO counters", "INTO main.counters"),
                        [b for b in (("events.stored", stored), ("events.duplicates", staged - stored)) if b[1]])
        cur.executemany("INSERT INTO main.settled (name, seq) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET seq = "
                        "excluded.seq", [("bodies", body_mark), ("counts", count_top)])
        cur.execute("COMMIT")
    except BaseException:
        cur.execute("ROLLBACK")
        raise
    with inbox_lock or nullcontext():
        _prune(cur, body_mark, count_top)
    cur.execute("PRAGMA inbox.wal_checkpoint(PASSIVE)")  # appends do not: see the module doc
    return stored, staged - stored, staged


def _prune(cur: sqlite3.Cursor, body_mark: int, count_mark: int) -> None:
    """Drop what the main file holds already: bodies and counts at or below the marks, and every set
    of row tables that no remaining body points into (whole, which is cheap)."""
    cur.execute("BEGIN")
    try:
        cur.execute("DELETE FROM inbox.counts WHERE seq <= ?", (count_mark,))  # a write first: takes the lock
        cur.execute("DELETE FROM inbox.bodies WHERE seq <= ?", (body_mark,))
        busy = {part for (part,) in cur.execute("SELECT DISTINCT part FROM inbox.bodies")}
        for part, tables in enumerate(PARTS):
            if part not in busy:
                for table in tables:
                    cur.execute(f"DELETE FROM inbox.{table}")
        cur.execute("COMMIT")
    except BaseException:
        cur.execute("ROLLBACK")
        raise
