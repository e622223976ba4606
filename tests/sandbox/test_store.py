"""The store's inbox: appends are committed at once, dedup and its counters follow in bulk, and every
read sees exactly what immediate dedup would show (also across a crash and a restart)."""

from __future__ import annotations

import gc
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from toolkit.datafile import load_datafile
from toolkit.sandbox import Catalog, Store, attribute, check_body
from toolkit.sandbox.ingest import Rows, gc_paused
from toolkit.sandbox.schema import PARTS
from toolkit.sandbox.store import INBOX_NAME

from .bodies import CONTROL, TREATMENT, body, conversion, decision, visitor
from .conftest import FIXTURE_DATAFILE


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.from_datafile(load_datafile(FIXTURE_DATAFILE))


def _inbox_rows(data_dir) -> int:
    """Rows in the inbox: events in both sets of tables, and bodies."""
    tables = ["bodies", *(t for part in PARTS for t in part)]
    with sqlite3.connect(data_dir / INBOX_NAME) as db:
        return sum(db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables)


def _parsed(catalog, *visitors, received_at=1.0):
    return check_body(body(*visitors), catalog, received_at=received_at)


def test_appends_are_deduplicated_before_any_read(tmp_path, catalog):
    store = Store(tmp_path, settle_rows=10**9)
    first = _parsed(catalog, visitor("u", decision(1, uuid="i1"), conversion("purchase", 2, uuid="c1")))
    again = _parsed(catalog, visitor("u", decision(1, uuid="i1"), conversion("purchase", 2, uuid="c1"),
                                     conversion("purchase", 3, uuid="c1")))  # same uuid, other timestamp: new
    for p in (first, again):
        store.append(p.decisions, p.conversions, {"events.received": p.n_events})
    assert _inbox_rows(tmp_path) == 2 + 3 + 2  # committed, not yet settled
    assert store.counters() == {"events.received": 5, "events.stored": 3, "events.duplicates": 2}
    assert _inbox_rows(tmp_path) == 0
    assert store.query("SELECT COUNT(*) FROM conversions")[0][0] == 2
    assert store.settle() == (0, 0)  # nothing left
    store.close()


def test_ingest_returns_what_it_stored(tmp_path, catalog):
    store = Store(tmp_path)
    p = _parsed(catalog, visitor("u", decision(1, uuid="i1"), conversion("purchase", 2, uuid="c1"),
                                 conversion("purchase", 2, uuid="c1")))
    assert store.ingest(p.decisions, p.conversions, {}) == (2, 1)
    assert store.ingest(p.decisions, p.conversions, {}) == (0, 3)
    store.close()


def test_settle_keeps_arrival_order_for_ties(tmp_path, catalog):
    """Two decisions at the same ms in one body: the first one sent is the visitor's variation."""
    store = Store(tmp_path, settle_rows=10**9)
    p = _parsed(catalog, visitor("a", decision(5, variation=CONTROL), decision(5, variation=TREATMENT)),
                visitor("b", decision(5, variation=CONTROL), decision(5, variation=TREATMENT)),
                visitor("c", decision(5, variation=TREATMENT), decision(5, variation=CONTROL)))
    store.append(p.decisions, p.conversions, {})
    assert attribute(store, "50001", ["40001"]).visitors == {CONTROL: 2, TREATMENT: 1}
    first = dict(store.query("SELECT visitor_id, variation_id FROM decisions "
                             "WHERE rowid IN (SELECT MIN(rowid) FROM decisions GROUP BY visitor_id)"))
    assert first == {"a": CONTROL, "b": CONTROL, "c": TREATMENT}
    store.close()


def test_body_level_values_are_stored_with_each_row(tmp_path, catalog):
    store = Store(tmp_path)
    p = _parsed(catalog, visitor("u", decision(1), conversion("purchase", 2)), received_at=123.5)
    store.append(p.decisions, p.conversions, {})
    rows = store.query("SELECT revision, client_name, client_version, account_id, received_at FROM decisions "
                       "UNION ALL SELECT revision, client_name, client_version, account_id, received_at FROM conversions")
    assert rows == [("42", "sandbox-tests", "0", "12345678", 123.5)] * 2
    store.close()


def test_an_append_settles_once_the_inbox_is_full(tmp_path, catalog):
    store = Store(tmp_path, settle_rows=3)
    p = _parsed(catalog, visitor("u", decision(1), conversion("purchase", 2)))
    store.append(p.decisions, p.conversions, {})
    assert _inbox_rows(tmp_path) == 3  # 2 events + the body row
    q = _parsed(catalog, visitor("v", conversion("purchase", 2)))
    store.append(q.decisions, q.conversions, {})
    assert _inbox_rows(tmp_path) == 0
    store.close()


def test_unsettled_appends_survive_a_crash(tmp_path):
    """A process that dies right after its appends: the next Store settles them, exact counts."""
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(FIXTURE_DATAFILE.parents[2])!r})
        from tests.sandbox.bodies import body, conversion, decision, visitor
        from toolkit.datafile import load_datafile
        from toolkit.sandbox import Catalog, Store, check_body
        catalog = Catalog.from_datafile(load_datafile({str(FIXTURE_DATAFILE)!r}))
        store = Store({str(tmp_path)!r}, settle_rows=10**9)
        p = check_body(body(visitor("u", decision(1, uuid="i"), conversion("purchase", 2, uuid="c"),
                                    conversion("purchase", 2, uuid="c"))), catalog, received_at=1.0)
        store.append(p.decisions, p.conversions, {{"events.received": p.n_events}})
        os._exit(0)
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    assert _inbox_rows(tmp_path) == 4
    store = Store(tmp_path)
    assert store.counters() == {"events.received": 3, "events.stored": 2, "events.duplicates": 1}
    store.close()


def test_reset_also_empties_the_inbox(tmp_path, catalog):
    store = Store(tmp_path, settle_rows=10**9)
    p = _parsed(catalog, visitor("u", decision(1), conversion("purchase", 2)))
    store.append(p.decisions, p.conversions, {"events.received": 2})
    store.reset()
    assert store.counters() == {} and store.query("SELECT COUNT(*) FROM conversions") == [(0,)]
    store.close()


def test_rows_without_their_body_header_are_refused(tmp_path):
    store = Store(tmp_path)
    with pytest.raises(TypeError, match="Rows"):
        store.append([("60001", "u", 1)], [], {})
    with pytest.raises(ValueError, match="header"):
        store.append(Rows(("42",), [("60001", "u", 1)]), [], {})
    store.append(Rows(), Rows(), {"requests.204": 1})  # an empty body: counters only
    assert store.counters() == {"requests.204": 1}
    store.close()


def test_gc_pause_restores_the_previous_state():
    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_paused():
        assert not gc.isenabled()
        raise RuntimeError
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_crash_between_settle_and_prune_counts_nothing_twice(tmp_path, catalog, monkeypatch):
    import toolkit.sandbox.inbox as inbox

    store = Store(tmp_path, settle_rows=10**9)
    p = _parsed(catalog, visitor("u", decision(1, uuid="i"), conversion("purchase", 2, uuid="c")))
    store.append(p.decisions, p.conversions, {"events.received": 2})
    monkeypatch.setattr(inbox, "_prune", lambda *a: None)  # the process dies right after the main commit
    assert store.settle() == (2, 0)
    assert _inbox_rows(tmp_path) == 3
    monkeypatch.undo()
    q = _parsed(catalog, visitor("u", conversion("purchase", 2, uuid="c"), conversion("purchase", 3, uuid="d")))
    store.append(q.decisions, q.conversions, {"events.received": 2})
    assert store.counters() == {"events.received": 4, "events.stored": 3, "events.duplicates": 1}
    assert _inbox_rows(tmp_path) == 0
    assert store.query("SELECT uuid FROM conversions ORDER BY rowid") == [("c",), ("d",)]
    store.close()


def test_background_settling_while_appending(tmp_path, catalog):
    store = Store(tmp_path, settle_rows=50, background=True)
    sent = 0
    for b in range(40):
        p = _parsed(catalog, *(visitor(f"b{b}-v{v}", decision(v), conversion("purchase", v + 1),
                                       conversion("purchase", v + 1, uuid=f"dup-{b}-{v}"),
                                       conversion("purchase", v + 1, uuid=f"dup-{b}-{v}")) for v in range(5)))
        store.append(p.decisions, p.conversions, {"events.received": p.n_events})
        sent += p.n_events
    assert store.counters() == {"events.received": sent, "events.stored": sent * 3 // 4,
                                "events.duplicates": sent // 4}
    assert _inbox_rows(tmp_path) == 0
    store.close()


def test_a_body_appended_during_a_settle_is_kept_for_the_next_one(tmp_path, catalog, monkeypatch):
    """Appends go to the other set of inbox tables while a settle drains one; the drained set is
    emptied whole, the other keeps what the settle did not see."""
    import toolkit.sandbox.inbox as inbox

    store = Store(tmp_path, settle_rows=10**9)
    p = _parsed(catalog, visitor("u", decision(1, uuid="i"), conversion("purchase", 2, uuid="c")))
    late = _parsed(catalog, visitor("v", conversion("purchase", 3, uuid="late1"), conversion("purchase", 4, uuid="late2")))
    store.append(p.decisions, p.conversions, {"events.received": 2})
    prune = inbox._prune

    def append_then_prune(*args):
        store._inbox.append(late.decisions, late.conversions, {"events.received": 2})  # after the snapshot
        prune(*args)

    monkeypatch.setattr(inbox, "_prune", append_then_prune)
    assert store.settle() == (2, 0)
    monkeypatch.undo()
    assert _inbox_rows(tmp_path) == 2 + 1  # the late body and its rows, nothing of the settled one
    assert store.counters() == {"events.received": 4, "events.stored": 4}
    assert store.query("SELECT uuid FROM conversions ORDER BY rowid") == [("c",), ("late1",), ("late2",)]
    assert _inbox_rows(tmp_path) == 0
    store.close()


def test_an_inbox_left_by_an_earlier_version_is_settled(tmp_path):
    """An inbox.sqlite of the one-set layout (no ``part`` column), with a body not yet settled."""
    with sqlite3.connect(tmp_path / INBOX_NAME) as db:
        db.executescript("""
            CREATE TABLE bodies (seq INTEGER PRIMARY KEY AUTOINCREMENT, revision TEXT, client_name TEXT,
                client_version TEXT, account_id TEXT, received_at REAL NOT NULL, decisions_from INTEGER NOT NULL,
                decisions_to INTEGER NOT NULL, conversions_from INTEGER NOT NULL, conversions_to INTEGER NOT NULL);
            CREATE TABLE decisions (entity_id, uuid, timestamp, visitor_id, campaign_id, experiment_id, variation_id,
                flag_key, rule_key, rule_type, variation_key, enabled, running, attributes);
            CREATE TABLE conversions (entity_id, uuid, timestamp, key, visitor_id, revenue, value, tags, attributes);
            CREATE TABLE counts (seq INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, value INTEGER NOT NULL);
            INSERT INTO conversions VALUES ('40001', 'old', 5, 'purchase', 'u', NULL, NULL, NULL, NULL);
            INSERT INTO bodies VALUES (NULL, '42', 'c', '0', '12345678', 1.0, 1, 0, 1, 1);
            INSERT INTO counts VALUES (NULL, 'events.received', 1);
        """)
    store = Store(tmp_path)
    assert store.counters() == {"events.received": 1, "events.stored": 1}
    assert store.query("SELECT uuid, revenue FROM conversions") == [("old", None)]
    assert _inbox_rows(tmp_path) == 0
    store.close()


def test_counter_only_appends_keep_the_inbox_wal_bounded(tmp_path):
    """400s and faults only bump counters and never call for a settle (which checkpoints the inbox):
    their commits still checkpoint the WAL once it holds 2048 pages."""
    store = Store(tmp_path, settle_rows=10**9)
    page = sqlite3.connect(tmp_path / INBOX_NAME).execute("PRAGMA page_size").fetchone()[0]
    for _ in range(1500):  # two WAL frames per bump: 3000 frames unbounded
        store.bump({"requests.400": 1})
    assert (tmp_path / f"{INBOX_NAME}-wal").stat().st_size <= 2100 * (page + 24)
    assert store.counters() == {"requests.400": 1500}
    store.close()
