"""Faults: a replay to a sandbox answering 20% 500s, 10% 429s with Retry-After, 5% dropped
connections and added latency delivers every event, the sandbox counts each exactly once, and the
ledger agrees with the sandbox row for row (and request for request)."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.delivery.conftest import make_events
from tests.reliability.helpers import ACCOUNT, FIXTURE_DATAFILE, PROJECT, stored_rows
from toolkit.delivery import RetryPolicy, deliver
from toolkit.ledger import read_ledger
from toolkit.payload import iter_bodies
from toolkit.results import load_e3
from toolkit.sandbox import FaultSpec, Sandbox

FAULTS = FaultSpec(error_share=0.20, throttle_share=0.10, drop_share=0.05, retry_after=0.5, latency_ms=5, seed=11)
# small backoffs so the test is quick; enough attempts that 35% faults never exhaust them (0.35**40)
RETRY = RetryPolicy(max_attempts=40, base=0.01, cap=0.2)


@pytest.mark.parametrize("n", [20_000, pytest.param(200_000, marks=pytest.mark.soak)])
def test_replay_under_faults_delivers_everything_exactly_once(tmp_path, n):
    events = make_events(n, visitors=max(10, n // 20), seed=n)
    ledger_path = tmp_path / "run.sqlite"
    with Sandbox(tmp_path / "sandbox", datafile=FIXTURE_DATAFILE, faults=FAULTS) as sb:
        bodies = iter_bodies(events, account_id=ACCOUNT, project_id=PROJECT, revision=sb.datafile.revision,
                             max_bytes=30_000)
        report = deliver(bodies, endpoint=sb.events_url, ledger=ledger_path, concurrency=8, retry=RETRY,
                         timeout=60, progress=False, seed=3)
        stats = sb.stats()
        sb.export_e3(tmp_path / "e3")
    e3 = load_e3(tmp_path / "e3")
    rows = stored_rows(tmp_path / "sandbox")
    ledger = read_ledger(ledger_path)
    batches = len(ledger.batches)
    assert batches >= 100, "too few bodies to exercise the faults"

    # every event delivered, nothing failed, nothing left over
    assert (report.delivered, report.failed, report.rejected, report.pending) == (n, 0, 0, 0)
    assert report.exit_code == 0
    injected = stats["faults_injected"]
    assert injected.get("error", 0) > 0 and injected.get("throttle", 0) > 0 and injected.get("drop", 0) > 0

    # the sandbox holds every uuid exactly once; a faulted request stored nothing
    stored = pd.DataFrame(rows, columns=["uuid", "entity_id", "visitor_id", "timestamp"])
    assert len(stored) == n and stored["uuid"].is_unique
    assert set(stored["uuid"]) == set(events["uuid"])
    assert stats["events_stored"] == n and stats["silently_dropped"] == 0
    assert stats["events_received"] == stats["events_stored"] + stats["duplicates"]

    # ledger == sandbox, row for row
    assert ledger.events["status"].eq("delivered").all() and ledger.batches["status"].eq("delivered").all()
    led = ledger.events[["uuid", "entity_id", "visitor_id", "timestamp"]].astype(
        {"uuid": str, "entity_id": str, "visitor_id": str, "timestamp": "int64"})
    merged = led.merge(stored.astype({"timestamp": "int64"}), on="uuid", how="outer", suffixes=("_ledger", "_sandbox"),
                       indicator=True)
    assert merged["_merge"].eq("both").all()
    for col in ("entity_id", "visitor_id", "timestamp"):
        assert (merged[f"{col}_ledger"] == merged[f"{col}_sandbox"]).all(), col

    # ... and request for request: what the sandbox injected is what the ledger saw
    req = ledger.requests
    seen = req["status"].value_counts(dropna=False)
    assert seen.get(500, 0) == injected["error"]
    assert seen.get(429, 0) == injected["throttle"]
    assert seen.get(204, 0) == stats["requests"]["204"] == batches
    no_answer = req[req["status"].isna()]
    assert len(no_answer) >= injected["drop"]  # dropped by the sandbox (plus any stale pooled connection)
    assert not no_answer["error"].str.contains("timeout").any()
    # a resend counts at the sandbox only if an earlier attempt reached it: with no timeouts, none did
    assert stats["duplicates"] == 0
    assert int(ledger.batches["attempts"].sum()) == len(req) == report.requests

    # E3 export agrees: each uuid once
    e3_uuids = pd.concat([e3.decisions["uuid"], e3.events["uuid"]], ignore_index=True)
    assert len(e3_uuids) == n and e3_uuids.is_unique and set(e3_uuids) == set(events["uuid"])
