"""The ledger's own contract: event rows written once, their status read through their batch; a
resumed run with other bodies moves events instead of doubling them; older ledgers stay readable."""

from __future__ import annotations

import sqlite3

import pandas as pd
import pytest

from tests.delivery.conftest import make_bodies, make_events
from toolkit import ledger as ledger_mod
from toolkit.errors import LedgerError
from toolkit.ledger import LEDGER_EVENTS, BatchResult, Ledger, RequestRecord, read_ledger

# batches and requests as every earlier layout had them
_OLD_TABLES = """
    CREATE TABLE batches (batch_id TEXT PRIMARY KEY, n_events INTEGER NOT NULL, bytes INTEGER NOT NULL,
        status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_status INTEGER, last_error TEXT);
    CREATE TABLE requests (id INTEGER PRIMARY KEY AUTOINCREMENT, batch_id TEXT NOT NULL,
        attempt INTEGER NOT NULL, started_at TEXT NOT NULL, latency_ms REAL, bytes INTEGER NOT NULL,
        status INTEGER, error TEXT);
"""


def _result(body, status, code, attempts=1):
    from datetime import UTC, datetime

    reqs = tuple(RequestRecord(body.batch_id, i + 1, datetime.now(UTC), 1.0, body.size, code, None)
                 for i in range(attempts))
    return BatchResult(body.batch_id, status, attempts, code, None if status == "delivered" else f"HTTP {code}", reqs)


def test_events_follow_their_batch_through_every_status(tmp_path):
    bodies = make_bodies(make_events(60), max_bytes=2_000)
    path = tmp_path / "l.sqlite"
    with Ledger.create(path) as book:
        book.begin(bodies[:3])
        assert set(read_ledger(path).events["status"]) == {"pending"}  # in flight reads as pending
        book.finish([_result(bodies[0], "delivered", 204), _result(bodies[1], "failed", 503, attempts=3)])
        book.begin(bodies[0:1])  # recording a body twice adds no event rows
        book.finish([_result(bodies[0], "delivered", 204)])
        summary = book.summary()
    led = read_ledger(path)
    assert len(led.events) == sum(b.n_events for b in bodies[:3])
    by_batch = led.events.groupby("batch_id")
    st = by_batch["status"].unique().map(list).to_dict()
    assert st == {bodies[0].batch_id: ["delivered"], bodies[1].batch_id: ["failed"], bodies[2].batch_id: ["pending"]}
    assert by_batch["attempts"].first().to_dict() == {bodies[0].batch_id: 2, bodies[1].batch_id: 3,
                                                      bodies[2].batch_id: 0}
    failed = led.events[led.events["batch_id"] == bodies[1].batch_id]
    assert (failed["last_status"] == 503).all() and (failed["last_error"] == "HTTP 503").all()
    assert summary["delivered"] == bodies[0].n_events and summary["pending"] == bodies[2].n_events
    assert list(led.events.columns) == list(LEDGER_EVENTS)
    # in body order, as recorded
    assert led.events["uuid"].tolist() == [u for b in bodies[:3] for u in b.events["uuid"]]


def test_a_resumed_run_with_other_bodies_moves_events_instead_of_doubling_them(tmp_path):
    events = make_events(200, visitors=20)
    small, large = make_bodies(events, max_bytes=2_000), make_bodies(events, max_bytes=8_000)
    assert {b.batch_id for b in small}.isdisjoint(b.batch_id for b in large)
    path = tmp_path / "l.sqlite"
    with Ledger.create(path) as book:
        book.begin(small)
        book.finish([_result(b, "delivered", 204) for b in small[:2]])
    with Ledger.open(path) as book:
        book.begin(large)
    led = read_ledger(path)
    assert len(led.events) == len(events) and led.events["uuid"].is_unique
    carried = {u: b.batch_id for b in large for u in b.events["uuid"]}
    assert led.events.set_index("uuid")["batch_id"].to_dict() == carried


def _varied_events():
    """Events of many shapes: keys, entities, decisions, synthesized or not, nulls."""
    events = make_events(120, visitors=12).copy()
    conv = events["kind"] == "conversion"
    events.loc[conv, "key"] = [["purchase", "add_to_cart", "Signup"][i % 3] for i in range(int(conv.sum()))]
    events.loc[conv, "entity_id"] = [["40001", "40002", "40003"][i % 3] for i in range(int(conv.sum()))]
    imp = ~conv
    events.loc[imp, "variation_id"] = [["70001", "70002"][i % 2] for i in range(int(imp.sum()))]
    events.loc[imp, "synthesized"] = [bool(i % 3 == 0) for i in range(int(imp.sum()))]
    events.loc[events.index[-5:], "revenue"] = None
    return events


def test_event_shapes_are_stored_once_and_read_back_as_every_column(tmp_path):
    events = _varied_events()
    bodies = make_bodies(events, max_bytes=3_000)
    assert len(bodies) > 4
    path = tmp_path / "l.sqlite"
    with Ledger.create(path) as book:
        book.begin(bodies[:2])
    with Ledger.open(path) as book:  # resumed: shapes already stored keep their ids, new ones follow
        book.begin(bodies[2:])
    led = read_ledger(path)
    sent = pd.concat([b.events for b in bodies], ignore_index=True)
    shape_cols = ["kind", "key", "entity_id", "campaign_id", "experiment_id", "variation_id", "synthesized"]
    for col in [c for c in LEDGER_EVENTS if c in sent.columns]:
        expected = sent[col].astype(LEDGER_EVENTS[col]).reset_index(drop=True)
        assert led.events[col].reset_index(drop=True).equals(expected), col
    with sqlite3.connect(path) as conn:
        stored = conn.execute("SELECT COUNT(*) FROM event_shapes").fetchone()[0]
        (page,) = conn.execute("PRAGMA page_size").fetchone()
    assert stored == len(sent[shape_cols].astype(object).drop_duplicates()) > 6
    assert page == 16384


@pytest.mark.parametrize("n", [1, 2, 700])
def test_a_body_of_any_size_is_recorded_row_for_row(tmp_path, n):
    """A body's events are stored as one array: read back column for column, in order."""
    events = make_events(n, visitors=3)
    (body,) = make_bodies(events, max_bytes=3_000_000)
    assert body.n_events == n
    path = tmp_path / "l.sqlite"
    with Ledger.create(path) as book:
        book.begin([body])
    led = read_ledger(path)
    for col in [c for c in LEDGER_EVENTS if c in body.events.columns]:
        expected = body.events[col].astype(LEDGER_EVENTS[col]).reset_index(drop=True)
        assert led.events[col].reset_index(drop=True).equals(expected), col
    assert (led.events["batch_id"] == body.batch_id).all()


def _view(path) -> pd.DataFrame:
    with sqlite3.connect(path) as conn:
        raw = pd.read_sql_query(f"SELECT {', '.join(LEDGER_EVENTS)} FROM events ORDER BY seq", conn)
    return ledger_mod._typed(raw, LEDGER_EVENTS)


def test_the_sql_view_and_read_ledger_give_the_same_events(tmp_path):
    """SQL users read the ``events`` view, pandas users read_ledger (which parses the bodies' arrays
    in Python): the same rows, values, types and order, after a resume that moved events too."""
    events = _varied_events()
    small, large = make_bodies(events, max_bytes=3_000), make_bodies(events, max_bytes=9_000)
    path = tmp_path / "l.sqlite"
    with Ledger.create(path) as book:
        book.begin(small[:4])
        book.finish([_result(small[0], "delivered", 204), _result(small[1], "failed", 503, attempts=2)])
    with Ledger.open(path) as book:
        book.begin(large[1:])
        summary = book.summary()
    led = read_ledger(path)
    assert led.events["uuid"].is_unique and len(led.events) > 50
    pd.testing.assert_frame_equal(_view(path), led.events)
    assert summary["events"] == len(led.events)
    assert {s: summary[s] for s in ("pending", "delivered", "failed")} == {
        s: int((led.events["status"] == s).sum()) for s in ("pending", "delivered", "failed")}


def test_an_older_ledger_is_read_but_not_resumed(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:  # the layout of earlier versions: status stored per event
        conn.executescript(_OLD_TABLES + """
            CREATE TABLE run (key TEXT PRIMARY KEY, value TEXT);
            CREATE TABLE events (uuid TEXT PRIMARY KEY, kind TEXT, key TEXT, entity_id TEXT, visitor_id TEXT,
                timestamp INTEGER, revenue INTEGER, value REAL, campaign_id TEXT, experiment_id TEXT,
                variation_id TEXT, synthesized INTEGER, source_event_id TEXT, batch_id TEXT NOT NULL,
                status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
                last_status INTEGER, last_error TEXT);
            INSERT INTO run VALUES ('run_id', 'r1');
            INSERT INTO batches VALUES ('b1', 1, 10, 'delivered', 1, 204, NULL);
            INSERT INTO events(uuid, kind, batch_id, status, attempts, last_status)
                VALUES ('u1', 'conversion', 'b1', 'delivered', 1, 204);
        """)
    led = read_ledger(path)
    assert led.events[["uuid", "status", "attempts"]].values.tolist() == [["u1", "delivered", 1]]
    with pytest.raises(LedgerError, match="older toolkit version"):
        Ledger.open(path)


def test_a_ledger_with_every_event_column_in_its_rows_is_read_but_not_resumed(tmp_path):
    """The layout before event shapes: event_rows held every column, ``events`` was a view."""
    path = tmp_path / "old.sqlite"
    cols = [c for c in LEDGER_EVENTS if c not in ("batch_id", "status", "attempts", "last_status", "last_error")]
    with sqlite3.connect(path) as conn:
        conn.executescript(_OLD_TABLES + f"""
            CREATE TABLE run (key TEXT PRIMARY KEY, value TEXT);
            CREATE TABLE event_rows (uuid TEXT, kind TEXT, key TEXT, entity_id TEXT, visitor_id TEXT,
                timestamp INTEGER, revenue INTEGER, value REAL, campaign_id TEXT, experiment_id TEXT,
                variation_id TEXT, synthesized INTEGER, source_event_id TEXT, batch_id TEXT NOT NULL);
            CREATE VIEW events AS SELECT e.rowid AS seq, {", ".join("e." + c for c in cols)}, e.batch_id,
                b.status AS status, b.attempts AS attempts, b.last_status AS last_status, b.last_error AS last_error
                FROM event_rows e JOIN batches b ON b.batch_id = e.batch_id;
            INSERT INTO run VALUES ('run_id', 'r1');
            INSERT INTO batches VALUES ('b1', 1, 10, 'delivered', 1, 204, NULL);
            INSERT INTO event_rows(uuid, kind, key, batch_id) VALUES ('u1', 'conversion', 'purchase', 'b1');
        """)
    led = read_ledger(path)
    assert led.events[["uuid", "key", "status"]].values.tolist() == [["u1", "purchase", "delivered"]]
    with pytest.raises(LedgerError, match="older toolkit version"):
        Ledger.open(path)


def test_a_ledger_with_one_row_per_event_is_read_but_not_resumed(tmp_path):
    """The layout before bodies' arrays: event_rows held one row per event, shapes apart."""
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(_OLD_TABLES + """
            CREATE TABLE run (key TEXT PRIMARY KEY, value TEXT);
            CREATE TABLE event_shapes (shape INTEGER PRIMARY KEY, kind TEXT, key TEXT, entity_id TEXT,
                campaign_id TEXT, experiment_id TEXT, variation_id TEXT, synthesized INTEGER);
            CREATE TABLE event_rows (uuid TEXT, shape INTEGER NOT NULL, visitor_id TEXT, timestamp INTEGER,
                revenue INTEGER, value REAL, source_event_id TEXT, batch_id TEXT NOT NULL);
            CREATE VIEW events AS SELECT e.rowid AS seq, e.uuid, s.kind, s.key, s.entity_id, e.visitor_id,
                e.timestamp, e.revenue, e.value, s.campaign_id, s.experiment_id, s.variation_id, s.synthesized,
                e.source_event_id, e.batch_id, b.status AS status, b.attempts AS attempts,
                b.last_status AS last_status, b.last_error AS last_error
                FROM event_rows e JOIN event_shapes s ON s.shape = e.shape JOIN batches b ON b.batch_id = e.batch_id;
            INSERT INTO run VALUES ('run_id', 'r1');
            INSERT INTO batches VALUES ('b1', 1, 10, 'delivered', 1, 204, NULL);
            INSERT INTO event_shapes VALUES (0, 'conversion', 'purchase', '4001', NULL, NULL, NULL, 0);
            INSERT INTO event_rows VALUES ('u1', 0, 'v1', 1793613600000, 1999, NULL, 'm1', 'b1');
        """)
    led = read_ledger(path)
    assert led.events[["uuid", "key", "revenue", "status"]].values.tolist() == [["u1", "purchase", 1999, "delivered"]]
    with pytest.raises(LedgerError, match="older toolkit version"):
        Ledger.open(path)
