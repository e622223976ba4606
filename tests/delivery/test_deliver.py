"""deliver() against a real HTTP server on 127.0.0.1: outcomes, retries, ledger contents."""

from __future__ import annotations

import hashlib
import sqlite3
from collections import Counter

import pytest

from tests.delivery.conftest import FAST, make_bodies, make_events
from tests.delivery.server import RESET, EventServer, Reply
from toolkit.contracts import Body
from toolkit.delivery import STRICT_HEADER, RetryPolicy, deliver
from toolkit.errors import LedgerError
from toolkit.ledger import Ledger, read_ledger


def _all_uuids(bodies) -> Counter:
    return Counter(u for b in bodies for u in b.events["uuid"])


def _run(bodies, server, tmp_path, **kw):
    kw.setdefault("retry", FAST)
    kw.setdefault("progress", False)
    path = tmp_path / "run.sqlite"
    report = deliver(bodies, endpoint=server.url, ledger=path, **kw)
    return report, read_ledger(path)


def _integrity(path) -> str:
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def test_success_delivers_every_event_once(bodies, server, tmp_path):
    report, led = _run(bodies, server, tmp_path, concurrency=4)
    n = sum(b.n_events for b in bodies)
    assert (report.events_total, report.delivered, report.rejected, report.failed) == (n, n, 0, 0)
    assert report.exit_code == 0 and report.requests == len(bodies) and report.retried_requests == 0
    assert report.bytes == sum(b.size for b in bodies)
    # the server got each body byte for byte, each uuid once
    assert sorted(r.data for r in server.received) == sorted(b.data for b in bodies)
    assert server.uuid_counts() == _all_uuids(bodies)
    assert all(r.headers["Content-Type"] == "application/json" for r in server.received)
    assert not any(STRICT_HEADER in r.headers for r in server.received)
    # the ledger: every event delivered with its batch, every batch and request recorded
    assert set(led.events["status"]) == {"delivered"} and len(led.events) == n
    assert set(led.events["uuid"]) == set(_all_uuids(bodies))
    by_batch = {b.batch_id: set(b.events["uuid"]) for b in bodies}
    assert {bid: set(g["uuid"]) for bid, g in led.events.groupby("batch_id")} == by_batch
    assert set(led.batches["status"]) == {"delivered"} and (led.batches["last_status"] == 204).all()
    assert dict(zip(led.batches["batch_id"], led.batches["bytes"], strict=True)) == {b.batch_id: b.size for b in bodies}
    assert len(led.requests) == len(bodies) and (led.requests["status"] == 204).all()
    assert (led.requests["latency_ms"] >= 0).all() and led.requests["started_at"].notna().all()
    ev = led.events.set_index("uuid")
    src = bodies[0].events.iloc[0]
    assert ev.loc[src["uuid"], "timestamp"] == src["timestamp"] and ev.loc[src["uuid"], "entity_id"] == src["entity_id"]
    assert led.run["dry_run"] == "false" and led.run["strict"] == "false" and "finished_at" in led.run
    assert led.summary()["delivered"] == n
    assert _integrity(tmp_path / "run.sqlite") == "ok"


def test_strict_mode_sends_the_strict_header(bodies, server, tmp_path):
    report, led = _run(bodies[:2], server, tmp_path, strict=True)
    assert report.exit_code == 0
    assert [r.headers.get(STRICT_HEADER) for r in server.received] == ["true", "true"]
    assert led.run["strict"] == "true"


def test_400_is_terminal_not_retried_and_explained(bodies, tmp_path):
    with EventServer(default=Reply(400, text='{"error": "invalid account_id 999"}')) as server:
        report, led = _run(bodies, server, tmp_path)
    n = sum(b.n_events for b in bodies)
    assert server.count == len(bodies)  # one attempt per body: never retried
    assert (report.rejected, report.delivered, report.failed, report.retried_requests) == (n, 0, 0, 0)
    assert report.exit_code == 1
    assert set(led.events["status"]) == {"rejected"} and (led.events["last_status"] == 400).all()
    err = led.batches["last_error"].iloc[0]
    assert "HTTP 400" in err and "invalid account_id 999" in err and "wrong account_id or project_id" in err
    assert (led.events["last_error"] == led.events["last_error"].iloc[0]).all()


def test_other_4xx_terminal_5xx_exhausted_is_failed(bodies, tmp_path):
    with EventServer(default=Reply(404)) as server:
        report, _ = _run(bodies[:3], server, tmp_path)
    assert server.count == 3 and report.rejected == sum(b.n_events for b in bodies[:3])
    with EventServer(default=Reply(503, text="try later")) as server:
        report, led = _run(bodies[:2], server, tmp_path / "b", retry=RetryPolicy(max_attempts=3, base=0.01, cap=0.02))
    assert server.count == 6 and report.failed == sum(b.n_events for b in bodies[:2]) and report.exit_code == 1
    assert set(led.batches["status"]) == {"failed"} and (led.batches["attempts"] == 3).all()
    assert "gave up after 3 attempts" in led.batches["last_error"].iloc[0]
    assert (led.events["attempts"] == 3).all() and len(led.requests) == 6


def test_500_then_success(bodies, tmp_path):
    with EventServer(script=[Reply(500), Reply(502)]) as server:
        report, led = _run(bodies, server, tmp_path, concurrency=1)
    assert report.exit_code == 0 and report.delivered == sum(b.n_events for b in bodies)
    assert report.retried_requests == 2 and report.requests == len(bodies) + 2
    assert server.uuid_counts() == Counter({u: (3 if u in set(bodies[0].events["uuid"]) else 1)
                                            for u in _all_uuids(bodies)})
    first = led.requests[led.requests["batch_id"] == bodies[0].batch_id]
    assert first["status"].tolist() == [500, 502, 204] and first["attempt"].tolist() == [1, 2, 3]
    assert led.batches.set_index("batch_id").loc[bodies[0].batch_id, "attempts"] == 3


def test_429_honours_retry_after_seconds(bodies, tmp_path):
    policy = RetryPolicy(max_attempts=3, base=0.001, cap=0.002)  # the backoff alone would be ~1 ms
    with EventServer(script=[Reply(429, headers={"Retry-After": "1"})]) as server:
        report, led = _run(bodies[:1], server, tmp_path, retry=policy)
    assert report.exit_code == 0 and server.count == 2
    gap = server.received[1].at - server.received[0].at
    assert gap >= 0.95  # waited as told (no upper bound: the machine may be busy)
    assert led.requests["status"].tolist() == [429, 204]
    assert "Retry-After 1 s" in led.requests["error"].iloc[0]


def test_timeout_is_retried(bodies, tmp_path):
    with EventServer(script=[Reply(delay=1.5)]) as server:
        report, led = _run(bodies[:1], server, tmp_path, timeout=0.3)
    assert report.exit_code == 0 and report.retried_requests == 1
    assert pd_isna(led.requests["status"].iloc[0]) and "timeout" in led.requests["error"].iloc[0]
    assert led.requests["status"].iloc[1] == 204


def test_connection_reset_is_retried(bodies, tmp_path):
    with EventServer(script=[RESET, RESET]) as server:
        report, led = _run(bodies[:2], server, tmp_path, concurrency=1)
    assert report.exit_code == 0 and report.delivered == sum(b.n_events for b in bodies[:2])
    assert report.retried_requests == 2
    errors = led.requests["error"].dropna().tolist()
    assert len(errors) == 2 and all("network error" in e for e in errors)


def test_connection_refused_fails_after_retries(bodies, tmp_path):
    with EventServer() as server:
        url = server.url
    report = deliver(bodies[:1], endpoint=url, ledger=tmp_path / "r.sqlite", retry=FAST, progress=False)
    assert report.failed == bodies[0].n_events and report.requests == FAST.max_attempts
    assert "network error" in read_ledger(tmp_path / "r.sqlite").batches["last_error"].iloc[0]


def test_dry_run_sends_nothing_and_records_everything(bodies, server, tmp_path):
    report, led = _run(bodies, server, tmp_path, dry_run=True)
    assert server.count == 0 and report.requests == 0
    n = sum(b.n_events for b in bodies)
    assert report.pending == n and report.exit_code == 0 and report.dry_run
    assert len(led.events) == n and set(led.events["status"]) == {"pending"}
    assert set(led.batches["status"]) == {"pending"} and len(led.batches) == len(bodies)
    assert led.run["dry_run"] == "true" and len(led.requests) == 0


def test_bodies_never_exceed_the_cap(tmp_path):
    events = make_events(400, visitors=37)
    for cap in (1_500, 4_000, 20_000):
        bodies = make_bodies(events, max_bytes=cap)
        assert all(b.size <= cap for b in bodies)
        assert sum(b.n_events for b in bodies) == len(events)
        with EventServer() as server:
            report = deliver(bodies, endpoint=server.url, ledger=tmp_path / f"{cap}.sqlite", max_bytes=cap,
                             progress=False, retry=FAST)
        assert report.delivered == len(events)
        assert max(len(r.data) for r in server.received) <= cap


def test_an_oversized_body_is_rejected_without_sending(bodies, server, tmp_path):
    big = Body(batch_id="toolarge", data=b"x" * 5_000, events=bodies[0].events, n_visitors=1)
    report, led = _run([big, *bodies[1:3]], server, tmp_path, max_bytes=4_000)
    assert server.count == 2 and report.rejected == big.n_events and report.exit_code == 1
    row = led.batches.set_index("batch_id").loc["toolarge"]
    assert row["status"] == "rejected" and row["attempts"] == 0 and "over the Event API cap" in row["last_error"]


def test_concurrency_keeps_several_requests_in_flight(bodies, tmp_path):
    with EventServer(default=Reply(delay=0.3)) as server:
        report, _ = _run(bodies, server, tmp_path, concurrency=4)
    assert report.exit_code == 0
    assert 2 <= server.max_active <= 4


def test_resume_sends_only_what_is_not_done(bodies, tmp_path):
    path = tmp_path / "run.sqlite"
    one = RetryPolicy(max_attempts=1)
    with EventServer(script=[Reply(204)] * 3, default=Reply(503)) as server:
        first = deliver(bodies, endpoint=server.url, ledger=path, retry=one, concurrency=1, progress=False)
    assert first.delivered == sum(b.n_events for b in bodies[:3]) and first.exit_code == 1
    with EventServer() as server, Ledger.open(path) as book:
        again = deliver(bodies, endpoint=server.url, ledger=book, retry=FAST, progress=False)
    assert again.exit_code == 0 and again.skipped == first.delivered
    assert again.delivered == again.events_total == sum(b.n_events for b in bodies)
    assert server.count == len(bodies) - 3
    assert set(server.uuid_counts()) == set(_all_uuids(bodies[3:]))  # nothing delivered is sent again
    led = read_ledger(path)
    assert set(led.events["status"]) == {"delivered"} and _integrity(path) == "ok"


def test_ledger_cannot_be_created_is_one_clear_error(tmp_path, bodies, server):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(LedgerError) as exc:
        deliver(bodies, endpoint=server.url, ledger=blocker / "run.sqlite", progress=False)
    msg = str(exc.value)
    assert "\n" not in msg and str(blocker / "run.sqlite") in msg and "writable" in msg
    assert server.count == 0
    with pytest.raises(LedgerError, match="already exists"):
        Ledger.create(blocker)


def test_disk_full_mid_run_leaves_a_consistent_ledger_that_resumes(tmp_path):
    events = make_events(3_000, visitors=300)
    bodies = make_bodies(events, max_bytes=3_000)
    path = tmp_path / "full.sqlite"
    book = Ledger.create(path)
    pages = book._conn.execute("PRAGMA page_count").fetchone()[0]
    book._conn.execute(f"PRAGMA max_page_count={pages + 8}")  # the "disk" fills up a few bodies in
    with EventServer() as server:
        with pytest.raises(LedgerError) as exc:
            deliver(bodies, endpoint=server.url, ledger=book, progress=False, concurrency=2)
        book.close()
        sent_before = server.uuid_counts()
    assert "full" in str(exc.value) and "--resume" in str(exc.value)
    assert _integrity(path) == "ok"
    led = read_ledger(path)
    in_flight = set(led.batches.loc[led.batches["status"] == "in_flight", "batch_id"])
    with EventServer() as server, Ledger.open(path) as again:
        report = deliver(bodies, endpoint=server.url, ledger=again, progress=False)
        resent = server.uuid_counts()
    assert report.exit_code == 0
    assert sent_before and report.skipped > 0  # the failure came mid-run, after some deliveries
    total = sent_before + resent
    assert set(total) == set(events["uuid"])  # no loss
    twice = {u for u, c in total.items() if c > 1}
    in_flight_uuids = {u for b in bodies if b.batch_id in in_flight for u in b.events["uuid"]}
    assert twice <= in_flight_uuids
    assert set(read_ledger(path).events["status"]) == {"delivered"}


def pd_isna(v) -> bool:
    import pandas as pd

    return bool(pd.isna(v))


def test_every_body_is_committed_in_flight_before_its_first_byte_is_sent(bodies, tmp_path):
    from toolkit.delivery import MockTransport, TransportResponse

    path = tmp_path / "run.sqlite"
    seen: list[tuple[str, str | None]] = []

    def handler(req):  # runs in a sender thread: what does the ledger on disk say about this body now?
        bid = hashlib.sha256(req.data).hexdigest()[:16]
        with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as conn:
            row = conn.execute("SELECT status FROM batches WHERE batch_id = ?", (bid,)).fetchone()
            n = conn.execute("SELECT COUNT(*) FROM events WHERE batch_id = ?", (bid,)).fetchone()[0]
        seen.append((row[0] if row else None, n))
        return TransportResponse(204)

    report = deliver(bodies, endpoint="http://127.0.0.1:9/v1/events", ledger=path, progress=False, concurrency=4,
                     transport=MockTransport(handler))
    assert report.exit_code == 0 and len(seen) == len(bodies)
    counts = sorted(b.n_events for b in bodies)
    assert all(status == "in_flight" for status, _ in seen) and sorted(n for _, n in seen) == counts
