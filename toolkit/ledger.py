"""The delivery ledger: one SQLite file per replay run, written as delivery goes.

Tables and views (``read_ledger`` returns each as a DataFrame with the dtypes in the schemas below):

- ``run`` (key, value): run_id, started_at, account_id, project_id, revision, endpoint (masked),
  datafile_source (masked), toolkit_version, strict, dry_run, the options that shape the bodies,
  plus resumed_at / resumes when a run was resumed.
- ``events`` (a view): one row per Optimizely event sent, with the batch that carries it and its
  delivery status ``pending | delivered | rejected | failed``, attempts, last HTTP status and last
  error. An event's status is its batch's (a body is delivered or refused whole; ``in_flight``
  reads as ``pending``), so a body's events are written once, when the body is first recorded, and
  never updated: one row of ``body_events`` per body, its events as a JSON array of
  ``[uuid, shape, visitor_id, timestamp, revenue, value, source_event_id]`` (one SQLite row per
  event cost ~2.5 us each, a third of a replay's recording CPU; measured). What many events share
  (kind, key, entity and decision ids, synthesized) is stored once per distinct combination in
  ``event_shapes``. The view expands the arrays with SQLite's JSON functions; :func:`read_ledger`
  reads them in Python (much faster for a whole ledger).
- ``batches``: one row per request body (``batch_id`` primary key, stable for the same events),
  status ``pending | in_flight | delivered | rejected | failed``.
- ``requests``: one row per HTTP attempt (bytes, HTTP status or null for a network error, latency).

Crash safety: a body's batch row is committed as ``in_flight`` together with its event rows before
the body is sent; after the response the batch row is updated and its requests recorded in one
transaction. A resumed run skips finished batches (delivered, or rejected: terminal) and resends
all others; a body already recorded keeps its event rows (the same batch id means the same
events), so the only bodies sent twice are those in flight at the kill. Ledgers written by earlier
versions (one row per event) are read by :func:`read_ledger` but not resumed. No secrets are stored:
callers pass masked URLs, and the ledger masks datafile keys again with
:func:`toolkit.secrets.mask_url`.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import uuid as _uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from .combos import combination_codes
from .contracts import Body
from .errors import LedgerError
from .secrets import mask_url

__all__ = [
    "Ledger",
    "LedgerFrames",
    "BatchResult",
    "RequestRecord",
    "read_ledger",
    "LEDGER_EVENTS",
    "LEDGER_BATCHES",
    "LEDGER_REQUESTS",
    "FINISHED",
]

log = logging.getLogger(__name__)

# Column -> pandas dtype of each table as read_ledger returns it.
LEDGER_EVENTS: dict[str, str] = {
    "uuid": "string",
    "kind": "string",  # conversion | impression
    "key": "string",
    "entity_id": "string",
    "visitor_id": "string",
    "timestamp": "Int64",  # event time, epoch ms
    "revenue": "Int64",  # minor units
    "value": "Float64",
    "campaign_id": "string",
    "experiment_id": "string",
    "variation_id": "string",
    "synthesized": "boolean",
    "source_event_id": "string",
    "batch_id": "string",
    "status": "string",  # pending | delivered | rejected | failed
    "attempts": "Int64",
    "last_status": "Int64",  # last HTTP status (null: network error or never sent)
    "last_error": "string",
}
LEDGER_BATCHES: dict[str, str] = {
    "batch_id": "string",
    "n_events": "Int64",
    "bytes": "Int64",
    "status": "string",  # pending | in_flight | delivered | rejected | failed
    "attempts": "Int64",
    "last_status": "Int64",
    "last_error": "string",
}
LEDGER_REQUESTS: dict[str, str] = {
    "id": "Int64",
    "batch_id": "string",
    "attempt": "Int64",  # 1-based within one run of deliver()
    "started_at": "datetime64[ms, UTC]",
    "latency_ms": "Float64",
    "bytes": "Int64",
    "status": "Int64",  # HTTP status, null for a network error / timeout
    "error": "string",
}
FINISHED = ("delivered", "rejected")  # batch statuses a resumed run does not send again

_EVENT_COLS = [c for c in LEDGER_EVENTS if c not in ("batch_id", "status", "attempts", "last_status", "last_error")]
_SHAPE_COLS = ("kind", "key", "entity_id", "campaign_id", "experiment_id", "variation_id", "synthesized")
_ROW_COLS = ("uuid", "shape", "visitor_id", "timestamp", "revenue", "value", "source_event_id")  # one event in body_events
_ROW_SQL = {c: f"j.value ->> {i}" for i, c in enumerate(_ROW_COLS)}
_SEQ_BITS = 24  # seq = body rowid << 24 | index in the body (a body holds far fewer than 2^24 events)
_EVENT_STATUS = "CASE b.status WHEN 'in_flight' THEN 'pending' ELSE b.status END"  # an event's: its batch's
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS run (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS event_shapes (
    shape INTEGER PRIMARY KEY, kind TEXT, key TEXT, entity_id TEXT, campaign_id TEXT, experiment_id TEXT,
    variation_id TEXT, synthesized INTEGER);
CREATE TABLE IF NOT EXISTS body_events (batch_id TEXT PRIMARY KEY, events TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY, n_events INTEGER NOT NULL, bytes INTEGER NOT NULL,
    status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_status INTEGER, last_error TEXT);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT, batch_id TEXT NOT NULL, attempt INTEGER NOT NULL,
    started_at TEXT NOT NULL, latency_ms REAL, bytes INTEGER NOT NULL, status INTEGER, error TEXT);
CREATE VIEW IF NOT EXISTS events AS
    SELECT (be.rowid << {_SEQ_BITS}) + j.key AS seq,
           {", ".join(("s." + c) if c in _SHAPE_COLS else f"{_ROW_SQL[c]} AS {c}" for c in _EVENT_COLS)}, be.batch_id,
           {_EVENT_STATUS} AS status,
           b.attempts AS attempts, b.last_status AS last_status, b.last_error AS last_error
    FROM body_events be JOIN json_each(be.events) j JOIN event_shapes s ON s.shape = {_ROW_SQL["shape"]}
         JOIN batches b ON b.batch_id = be.batch_id;
"""

@dataclass(frozen=True)
class RequestRecord:
    """One HTTP attempt."""

    batch_id: str
    attempt: int
    started_at: datetime
    latency_ms: float
    bytes: int
    status: int | None
    error: str | None


@dataclass(frozen=True)
class BatchResult:
    """The outcome of one body: its final status and every attempt made for it."""

    batch_id: str
    status: str  # delivered | rejected | failed; in_flight when interrupted before an outcome
    attempts: int
    last_status: int | None
    last_error: str | None
    requests: tuple[RequestRecord, ...] = ()


@dataclass(frozen=True)
class LedgerFrames:
    """A ledger read into pandas: ``run`` info and one frame per table."""

    run: dict[str, str]
    events: pd.DataFrame
    batches: pd.DataFrame
    requests: pd.DataFrame

    def summary(self) -> dict[str, Any]:
        return _summary(
            self.events["status"].value_counts().to_dict(),
            self.batches["status"].value_counts().to_dict(),
            len(self.requests),
        )


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(ts: datetime) -> str:
    return ts.isoformat(timespec="milliseconds")


def _summary(events: Mapping[str, int], batches: Mapping[str, int], requests: int) -> dict[str, Any]:
    ev = {s: int(events.get(s, 0)) for s in ("pending", "delivered", "rejected", "failed")}
    ba = {s: int(batches.get(s, 0)) for s in ("pending", "in_flight", "delivered", "rejected", "failed")}
    return {"events": sum(ev.values()), **ev, "batches": sum(ba.values()),
            "batches_by_status": ba, "requests": int(requests)}


def _values(frame: pd.DataFrame, col: str) -> Any:
    """A column as plain Python values (NA -> None); all None when the frame lacks it."""
    if col not in frame.columns:
        return [None] * len(frame)
    s = frame[col]
    if col == "synthesized":
        s = s.astype("boolean").astype("Int64")
    return s.to_numpy(dtype=object, na_value=None)


def _shape_codes(frame: pd.DataFrame) -> tuple[np.ndarray, list[tuple]]:
    """Per event, the index of its shape in the list of the frame's distinct shapes (tuples of
    ``_SHAPE_COLS`` values as the ledger stores them, None for NA)."""
    code, first = combination_codes([frame[c] for c in _SHAPE_COLS if c in frame.columns], len(frame))
    firsts = frame.iloc[first]
    return code, list(zip(*(_values(firsts, c) for c in _SHAPE_COLS), strict=True))


class Ledger:
    """A delivery ledger file. Open with :meth:`create` (a new run) or :meth:`open` (resume).

    Safe to share between threads: every transaction and read holds the ledger's lock (the
    delivery worker commits bodies on a ledger thread and records outcomes from its own).
    """

    def __init__(self, path: Path, conn: sqlite3.Connection, *, resumed: bool = False) -> None:
        self.path = path
        self._conn = conn
        self._resumed = resumed  # bodies new to the ledger may carry events an earlier body carried
        self._lock = threading.RLock()
        self._shapes: dict[tuple, int] = {}  # every row of event_shapes -> its shape id
        self._holders: dict[str, set[str]] | None = None  # resumed: uuid -> batch ids holding it (read on first use)

    # ---- opening ---------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, run: Mapping[str, Any] | None = None) -> Ledger:
        """Create a new ledger file; an existing file is an error (use :meth:`open` to resume)."""
        p = Path(path)
        if p.exists():
            raise LedgerError(f"ledger {p}: already exists; resume it (--resume) or choose another --ledger path")
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LedgerError(f"ledger {p}: cannot create its folder ({exc.strerror}); "
                              "choose a writable --ledger path") from None
        ledger = cls(p, cls._connect(p, create=True))
        info = {"run_id": _uuid.uuid4().hex, "started_at": _iso(_now())}
        info.update({k: v for k, v in (run or {}).items() if v is not None})
        ledger.set_run(info)
        return ledger

    @classmethod
    def open(cls, path: str | Path) -> Ledger:
        """Open an existing ledger to resume its run."""
        p = Path(path)
        if not p.is_file():
            raise LedgerError(f"ledger {p}: not found; --resume needs the ledger of an earlier run "
                              "(drop --resume to start a new one)")
        ledger = cls(p, cls._connect(p, create=False), resumed=True)
        if "run_id" not in ledger.run_info():
            ledger.close()
            raise LedgerError(f"ledger {p}: holds no run info; it is not a delivery ledger")
        ledger._shapes = {tuple(r[1:]): r[0] for r in ledger._read(
            f"SELECT shape, {', '.join(_SHAPE_COLS)} FROM event_shapes")}
        return ledger

    @staticmethod
    def _connect(p: Path, *, create: bool) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(p, isolation_level=None, check_same_thread=False)
            if create:  # bigger pages: appending a body's rows costs ~30% less CPU (measured)
                conn.execute("PRAGMA page_size=16384")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA cache_size=-65536")  # 64 MB: a resumed run's uuid index stays in memory
            if create:
                conn.executescript(_SCHEMA)
            else:
                tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                missing = {"run", "body_events", "event_shapes", "batches", "requests"} - tables
                if missing and missing <= {"body_events", "event_shapes"} and tables & {"events", "event_rows"}:
                    conn.close()  # an events table, or one row per event (event_rows)
                    raise LedgerError(f"ledger {p}: written by an older toolkit version; it can be read "
                                      "(read_ledger) but not resumed: start a new run with another --ledger")
                if missing:
                    conn.close()
                    raise LedgerError(f"ledger {p}: not a delivery ledger (no table {', '.join(sorted(missing))})")
        except sqlite3.DatabaseError as exc:
            verb = "create" if create else "open"
            raise LedgerError(f"ledger {p}: cannot {verb} it ({exc}); choose a writable --ledger path "
                              "with free space") from None
        return conn

    # ---- writing ---------------------------------------------------------------------------
    def _write(self, what: str, fn) -> None:
        """Run ``fn(conn)`` in one transaction; a failure rolls back and raises LedgerError."""
        conn = self._conn
        with self._lock:
            try:
                conn.execute("BEGIN IMMEDIATE")
                fn(conn)
                conn.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                if not isinstance(exc, sqlite3.Error):
                    raise
                raise LedgerError(f"ledger {self.path}: cannot record {what} ({exc}); the ledger is unchanged by "
                                  "this step: free space or fix permissions, then run again with --resume") from None

    def set_run(self, info: Mapping[str, Any]) -> None:
        rows = []
        for k, v in info.items():
            text = str(v).lower() if isinstance(v, bool) else str(v)
            if k in ("endpoint", "datafile_source"):
                text = mask_url(text)
            rows.append((k, text))
        self._write("run info", lambda c: c.executemany(
            "INSERT INTO run(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value", rows))

    def begin(self, bodies: Sequence[Body], *, status: str = "in_flight") -> None:
        """Record bodies (and their events) as about to be sent, in one transaction.

        ``status`` is ``in_flight`` for a real send and ``pending`` for a dry run. A body already in
        the ledger (a resumed run) only changes status: its batch id is a hash of its bytes, so its
        event rows are the ones recorded then. In a resumed run, events of a body new to the ledger
        leave the rows of any earlier body that carried them (bodies built with other options).
        """
        if not bodies:
            return
        if status not in ("in_flight", "pending"):
            raise ValueError(f"begin() status must be in_flight or pending, not {status!r}")
        batch_rows = [(b.batch_id, b.n_events, b.size, status) for b in bodies]
        ids = [b.batch_id for b in bodies]
        with self._lock:  # shape ids are handed out here, and kept only once committed
            known = {r[0] for r in self._read(
                f"SELECT batch_id FROM batches WHERE batch_id IN ({', '.join('?' * len(ids))})", ids)}
            new_shapes: dict[tuple, int] = {}
            rows: list[tuple[str, list[str], str]] = []  # batch id, its uuids, its events as JSON
            for b in bodies:
                if b.batch_id not in known:
                    rows.append((b.batch_id, *self._event_rows(b, new_shapes)))
                    known.add(b.batch_id)

            def fn(c: sqlite3.Connection) -> None:
                c.executemany(
                    "INSERT INTO batches(batch_id, n_events, bytes, status) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(batch_id) DO UPDATE SET status=excluded.status", batch_rows)
                c.executemany(f"INSERT INTO event_shapes(shape, {', '.join(_SHAPE_COLS)}) VALUES "
                              f"({', '.join('?' * (len(_SHAPE_COLS) + 1))})",
                              [(i, *shape) for shape, i in new_shapes.items()])
                for batch_id, uuids, events in rows:
                    if self._resumed:
                        self._take_over(c, batch_id, uuids)
                    c.execute("INSERT INTO body_events(batch_id, events) VALUES (?, ?)", (batch_id, events))

            try:
                self._write(f"{len(bodies)} batch(es) as {status}", fn)
            except BaseException:
                self._holders = None  # the transaction rolled back: read the map again when next needed
                raise
            self._shapes.update(new_shapes)

    def _take_over(self, c: sqlite3.Connection, batch_id: str, uuids: list[str]) -> None:
        """In a resumed run: the events ``uuids`` of the new body ``batch_id`` leave the bodies that
        recorded them before (bodies built with other options), as if those never carried them."""
        if self._holders is None:
            self._holders = {}
            for bid, events in c.execute("SELECT batch_id, events FROM body_events"):
                for row in orjson.loads(events):
                    self._holders.setdefault(row[0], set()).add(bid)
        moved = set(uuids)
        earlier = set().union(*(self._holders.get(u, ()) for u in moved))
        for bid in sorted(earlier):
            (events,) = c.execute("SELECT events FROM body_events WHERE batch_id = ?", (bid,)).fetchone()
            kept = [row for row in orjson.loads(events) if row[0] not in moved]
            c.execute("UPDATE body_events SET events = ? WHERE batch_id = ?", (orjson.dumps(kept).decode(), bid))
        for u in moved:
            self._holders[u] = {batch_id}

    def _event_rows(self, body: Body, new_shapes: dict[tuple, int]) -> tuple[list[str], str]:
        """The body's uuids and its events as ``body_events`` stores them: a JSON array of
        ``_ROW_COLS`` arrays (plain values, NA -> null); shapes not in the ledger yet get the next
        ids, in ``new_shapes``."""
        frame = body.events
        codes, shapes = _shape_codes(frame)
        ids = []
        for shape in shapes:
            sid = self._shapes.get(shape, new_shapes.get(shape))
            if sid is None:
                sid = new_shapes[shape] = len(self._shapes) + len(new_shapes)
            ids.append(sid)
        columns = [np.asarray(ids, dtype=np.int64)[codes].tolist() if c == "shape" else list(_values(frame, c))
                   for c in _ROW_COLS]
        return columns[0], orjson.dumps(list(zip(*columns, strict=True))).decode()

    def finish(self, results: Iterable[BatchResult]) -> None:
        """Record the outcome of bodies (their events follow): batches and requests in one transaction."""
        results = list(results)
        if not results:
            return
        batch_rows = [(r.status, r.attempts, r.last_status, r.last_error, r.batch_id) for r in results]
        req_rows = [(q.batch_id, q.attempt, _iso(q.started_at), q.latency_ms, q.bytes, q.status, q.error)
                    for r in results for q in r.requests]

        def fn(c: sqlite3.Connection) -> None:
            # an interrupted body stays in_flight (resume resends it); its events read as pending
            c.executemany("UPDATE batches SET status=?, attempts=attempts+?, last_status=?, last_error=? "
                          "WHERE batch_id=?", batch_rows)
            c.executemany("INSERT INTO requests(batch_id, attempt, started_at, latency_ms, bytes, status, error) "
                          "VALUES (?, ?, ?, ?, ?, ?, ?)", req_rows)

        self._write(f"the outcome of {len(results)} batch(es)", fn)

    # ---- reading ---------------------------------------------------------------------------
    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def run_info(self) -> dict[str, str]:
        return dict(self._read("SELECT key, value FROM run"))

    def batch_ids(self, statuses: Iterable[str] = FINISHED) -> set[str]:
        statuses = tuple(statuses)
        return {r[0] for r in self._read(
            f"SELECT batch_id FROM batches WHERE status IN ({', '.join('?' * len(statuses))})", statuses)}

    def summary(self) -> dict[str, Any]:
        """Counts: events by status, batches by status, requests."""
        ev = dict(self._read(  # from the arrays' lengths: the events view would expand every array
            f"SELECT {_EVENT_STATUS}, "
            "SUM(json_array_length(be.events)) FROM body_events be JOIN batches b ON b.batch_id = be.batch_id "
            "GROUP BY 1"))
        ba = dict(self._read("SELECT status, COUNT(*) FROM batches GROUP BY status"))
        ((n_req,),) = self._read("SELECT COUNT(*) FROM requests")
        return _summary(ev, ba, n_req)

    def integrity_check(self) -> str:
        return self._read("PRAGMA integrity_check")[0][0]

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Ledger({str(self.path)!r})"


def _typed(frame: pd.DataFrame, schema: dict[str, str]) -> pd.DataFrame:
    out = {}
    for col, dtype in schema.items():
        s = frame[col]
        if dtype.startswith("datetime"):
            out[col] = pd.to_datetime(s, utc=True, format="ISO8601").astype(dtype)
        elif dtype == "boolean":
            out[col] = s.astype("Int64").astype("boolean")
        else:
            out[col] = s.astype(dtype)
    return pd.DataFrame(out, index=frame.index)


def read_ledger(path: str | Path) -> LedgerFrames:
    """Read a ledger into pandas in one call (read-only; safe while a run is writing it)."""
    p = Path(path)
    if not p.is_file():
        raise LedgerError(f"ledger {p}: not found; pass the --ledger path of a replay run")
    try:
        conn = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise LedgerError(f"ledger {p}: cannot open it ({exc})") from None
    try:
        run = dict(conn.execute("SELECT key, value FROM run").fetchall())
        frames = {}
        kind = conn.execute("SELECT type FROM sqlite_master WHERE name = 'events'").fetchone()
        bodies = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'body_events'").fetchone()
        events_order = "seq" if kind and kind[0] == "view" else "rowid"  # a table in older ledgers
        for table, schema in (("events", LEDGER_EVENTS), ("batches", LEDGER_BATCHES), ("requests", LEDGER_REQUESTS)):
            if table == "events" and bodies:
                raw = _events_frame(conn)
            else:
                order = {"events": events_order, "batches": "rowid", "requests": "id"}[table]
                raw = pd.read_sql_query(f"SELECT {', '.join(schema)} FROM {table} ORDER BY {order}", conn)
            frames[table] = _typed(raw, schema)
    except (sqlite3.Error, pd.errors.DatabaseError, orjson.JSONDecodeError) as exc:
        raise LedgerError(f"ledger {p}: not a readable delivery ledger ({exc})") from None
    finally:
        conn.close()
    return LedgerFrames(run=run, **frames)


def _events_frame(conn: sqlite3.Connection) -> pd.DataFrame:
    """The rows of the ``events`` view, read from ``body_events`` in Python: each body's array is
    parsed once (orjson), shapes and batch outcomes are joined by index (numpy). Same values and
    order as ``SELECT * FROM events ORDER BY seq``, ~10x faster for a whole ledger (measured)."""
    shapes = conn.execute(f"SELECT shape, {', '.join(_SHAPE_COLS)} FROM event_shapes").fetchall()
    shape_ids = [r[0] for r in shapes]
    outcome_cols = ("status", "attempts", "last_status", "last_error")
    batches = conn.execute(
        f"SELECT batch_id, {_EVENT_STATUS}, attempts, last_status, last_error FROM batches b").fetchall()
    batch_pos = {r[0]: i for i, r in enumerate(batches)}
    columns: dict[str, list] = {c: [] for c in _ROW_COLS}
    body_of: list[np.ndarray] = []
    for batch_id, events in conn.execute("SELECT batch_id, events FROM body_events ORDER BY rowid"):
        rows = orjson.loads(events)
        if rows:
            for c, values in zip(_ROW_COLS, zip(*rows, strict=True), strict=True):
                columns[c].extend(values)
            body_of.append(np.full(len(rows), batch_pos[batch_id], dtype=np.int64))
    n = len(columns["uuid"])
    which_batch = np.concatenate(body_of) if body_of else np.zeros(0, dtype=np.int64)
    shape_pos = np.zeros(max(shape_ids, default=-1) + 1, dtype=np.int64)
    shape_pos[list(shape_ids)] = np.arange(len(shape_ids))
    which_shape = shape_pos[np.asarray(columns["shape"], dtype=np.int64)] if n else np.zeros(0, dtype=np.int64)
    out: dict[str, Any] = {}
    for c in _EVENT_COLS:
        if c in _SHAPE_COLS:
            i = _SHAPE_COLS.index(c) + 1
            out[c] = np.asarray([r[i] for r in shapes], dtype=object)[which_shape] if n else []
        else:
            out[c] = columns[c]
    out["batch_id"] = np.asarray([r[0] for r in batches], dtype=object)[which_batch] if n else []
    for i, c in enumerate(outcome_cols, start=1):
        out[c] = np.asarray([r[i] for r in batches], dtype=object)[which_batch] if n else []
    return pd.DataFrame({c: pd.Series(v, dtype=object) for c, v in out.items()})
