"""The reconcile table and diagnoses on hand-built ledgers (real SQLite files through Ledger's API)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from toolkit.attribution import predict
from toolkit.contracts import EVENTS, conform
from toolkit.datafile import load_datafile
from toolkit.reconcile import Tolerance, reconcile, write_outputs
from toolkit.results import RESULTS, E3Frames

from .builders import (
    CONTROL,
    EXP,
    T0,
    TREATMENT,
    conversion,
    events_frame,
    impression,
    ledger_from_events,
    scenario,
)

LATER = datetime(2023, 11, 15, tzinfo=UTC)  # results read well after delivery (no lag)


@pytest.fixture(scope="module")
def datafile():
    from tests.conftest import FIXTURES

    return load_datafile(FIXTURES / "datafile.json")


def truth(events: pd.DataFrame, datafile, *, start=None, end=None) -> pd.DataFrame:
    """What Optimizely shows when it counts exactly ``events`` by the attribution rules."""
    c = predict(conform(events, EVENTS), datafile).counts
    return conform(c.rename(columns={"variation_key": "variation_name"}).assign(
        start_time=pd.Timestamp(start or "2023-11-01", tz="UTC"), end_time=pd.Timestamp(end or "2023-12-01", tz="UTC")),
        RESULTS)


def row(rec, exp=EXP, var=CONTROL, key="purchase", metric="total_conversions"):
    t = rec.table
    sel = (t["experiment_id"] == exp) & (t["metric"] == metric)
    sel &= t["variation_id"].isna() if var is None else (t["variation_id"] == var)
    sel &= t["event_key"].isna() if key is None else (t["event_key"] == key)
    got = t[sel.fillna(False)]
    assert len(got) == 1, got
    return got.iloc[0]


def test_attribution_defects_each_diagnosed_with_count(tmp_path, datafile):
    ev, defects = scenario()
    led = ledger_from_events(tmp_path / "l.sqlite", ev)
    sent_ok = ev[ev["key"] != "Purchase"]
    rec = reconcile(led, truth(sent_ok, datafile), datafile, as_of=LATER)
    for code, n in defects.items():
        assert rec.diagnosis(code).count == n, code
    assert "'Purchase' -> 'purchase' (2)" in rec.diagnosis("key_mismatch").examples
    assert rec.unexplained == 0 and not (rec.table["status"] == "gap").any()
    assert not rec.ok  # conversions were lost: explained is not ok
    # late visitor: in control, sent 11 (10 ok buyers + late), counted 10
    r = row(rec, var=CONTROL)
    assert (r.sent, r.delivered, r.expected, r.counted, r.gap, r.explained, r.unexplained) == (11, 11, 10, 10, 1, 1, 0)
    assert r.diagnoses == "decision_after_conversion"
    nodec = row(rec, var=None)
    assert (nodec.sent, nodec.counted, nodec.diagnoses) == (3, 0, "not_bucketed")
    # the worst rows come first
    assert rec.table.iloc[0]["status"] == "explained" and rec.table.iloc[-1]["status"] == "ok"


def test_clean_replay_is_ok_and_exact(tmp_path, datafile):
    rows = [e for i in range(6) for e in (impression(f"v{i}", T0 + i, CONTROL if i % 2 else TREATMENT),
                                          conversion(f"v{i}", T0 + 100 + i, revenue=250))]
    ev = events_frame(rows)
    led = ledger_from_events(tmp_path / "l.sqlite", ev)
    rec = reconcile(led, truth(ev, datafile), datafile, as_of=LATER)
    assert rec.ok and rec.unexplained == 0
    assert row(rec, var=TREATMENT, metric="revenue").counted == 750
    assert row(rec, var=TREATMENT, key=None, metric="visitors").counted == 3


def test_unexplained_gap_reported_and_tolerance(tmp_path, datafile):
    rows = [e for i in range(10) for e in (impression(f"v{i}", T0 + i), conversion(f"v{i}", T0 + 100 + i))]
    ev = events_frame(rows)
    led = ledger_from_events(tmp_path / "l.sqlite", ev)
    res = truth(ev, datafile)
    hit = (res["variation_id"] == CONTROL) & (res["event_key"] == "purchase")
    res.loc[hit, "total_conversions"] -= 2
    rec = reconcile(led, res, datafile, as_of=LATER)
    r = row(rec)
    assert (r.gap, r.explained, r.unexplained, r.status) == (2, 0, 2, "gap")
    assert rec.unexplained == 2 and rec.diagnosis("unexplained").count == 2
    assert rec.table.iloc[0]["status"] == "gap"
    assert reconcile(led, res, datafile, as_of=LATER, tolerance=Tolerance(abs=2)).ok
    assert reconcile(led, res, datafile, as_of=LATER, tolerance=Tolerance(rel=0.2)).ok
    assert not reconcile(led, res, datafile, as_of=LATER, tolerance=Tolerance(rel=0.1)).ok


def test_400_wrong_project_id(tmp_path, datafile):
    rows = [e for i in range(8) for e in (impression(f"v{i}", T0 + i), conversion(f"v{i}", T0 + 100 + i))]
    ev = events_frame(rows)
    bad = {f"v{i}" for i in range(3)}
    led = ledger_from_events(tmp_path / "l.sqlite", ev, run={"project_id": "11111111"},
                             status_of=lambda r: ("rejected", 400) if r.visitor_id in bad else ("delivered", 204))
    delivered = ev[~ev["visitor_id"].isin(bad)]
    rec = reconcile(led, truth(delivered, datafile), datafile, as_of=LATER)
    d = rec.diagnosis("rejected_400")
    assert d.count == 6 and "project_id sent '11111111'" in d.detail
    r = row(rec)
    assert (r.sent, r.delivered, r.counted, r.explained, r.unexplained) == (8, 5, 5, 3, 0)


def test_403_recorded(tmp_path, datafile):
    ev = events_frame([impression("v0", T0), conversion("v0", T0 + 5)])
    led = ledger_from_events(tmp_path / "l.sqlite", ev, status_of=lambda r: ("failed", 403))
    rec = reconcile(led, truth(ev.iloc[0:0], datafile), datafile, as_of=LATER)
    assert rec.diagnosis("forbidden_403").count == 2 and rec.unexplained == 0


def test_revenue_not_in_minor_units(tmp_path, datafile):
    rows = [e for i in range(4) for e in (impression(f"v{i}", T0 + i), conversion(f"v{i}", T0 + 100 + i, revenue=90))]
    sent = events_frame(rows)  # 89.99 sent as-is (rounded): what a wrong blueprint produces
    reference = sent.assign(revenue=sent["revenue"].where(sent["revenue"].isna(), 8999))
    led = ledger_from_events(tmp_path / "l.sqlite", sent)
    rec = reconcile(led, truth(sent, datafile), datafile, as_of=LATER,
                    expected=predict(conform(reference, EVENTS), datafile))
    d = rec.diagnosis("revenue_units")
    assert d.count == 4 and "0.01" in d.detail
    r = row(rec, metric="revenue")
    assert (r.counted, r.expected, r.status) == (360, 35996, "explained")
    assert rec.diagnosis("unexplained").count == 0


def test_stale_datafile_and_visitor_inflation(tmp_path, datafile):
    ev = events_frame([impression("v0", T0), conversion("v0", T0 + 5)])
    led = ledger_from_events(tmp_path / "l.sqlite", ev, run={"revision": "41"})
    rec = reconcile(led, truth(ev, datafile), datafile, as_of=LATER,
                    mapping={"multi_anonymous": 7, "identity": "user_or_anonymous"})
    d = rec.diagnosis("stale_datafile")
    assert d.count == 2 and "current datafile 42" in d.examples
    assert rec.diagnosis("visitor_inflation").count == 7
    stitched = reconcile(led, truth(ev, datafile), datafile, as_of=LATER,
                         mapping={"multi_anonymous": 7, "identity": "stitched"})
    assert stitched.diagnosis("visitor_inflation") is None


def test_processing_lag_and_window(tmp_path, datafile):
    rows = [e for i in range(6) for e in (impression(f"v{i}", T0 + i), conversion(f"v{i}", T0 + 100 + i * 1000))]
    ev = events_frame(rows)
    now = datetime(2023, 11, 15, 12, tzinfo=UTC)
    led = ledger_from_events(tmp_path / "l.sqlite", ev, delivered_at=now - timedelta(minutes=3))
    rec = reconcile(led, truth(ev.iloc[0:0], datafile).iloc[0:0], datafile, as_of=now)  # 204: nothing counted yet
    assert rec.diagnosis("processing_lag").count == 12 and rec.unexplained == 0
    # results window ending before the last 3 conversions
    end = pd.Timestamp(T0 + 2500, unit="ms", tz="UTC").isoformat()
    inside = ev[(ev["kind"] == "impression") | (ev["timestamp"] <= T0 + 2500)]
    rec = reconcile(led, truth(inside, datafile, start="2023-11-01", end=end), datafile, as_of=now + timedelta(hours=1))
    assert rec.diagnosis("outside_window").count == 3 and rec.unexplained == 0


def test_e3_arrivals_event_by_event(tmp_path, datafile):
    rows = [e for i in range(5) for e in (impression(f"v{i}", T0 + i), conversion(f"v{i}", T0 + 100 + i))]
    ev = events_frame(rows)
    led = ledger_from_events(tmp_path / "l.sqlite", ev)
    lost = set(ev.loc[(ev["kind"] == "conversion") & ev["visitor_id"].isin(["v1", "v3"]), "uuid"])
    imps, convs = ev[ev["kind"] == "impression"], ev[(ev["kind"] == "conversion") & ~ev["uuid"].isin(lost)]
    e3 = E3Frames(decisions=imps[["uuid"]].assign(revision="42"), events=convs[["uuid"]].assign(revision="42"))
    rec = reconcile(led, truth(pd.concat([imps, convs]), datafile), datafile, e3=e3, as_of=LATER)
    assert rec.diagnosis("dropped_by_optimizely").count == 2 and rec.unexplained == 0
    assert set(rec.arrivals.loc[~rec.arrivals["arrived"], "uuid"]) == lost
    paths = write_outputs(rec, tmp_path / "out")
    assert {p.name for p in paths.values()} == {"reconciliation.csv", "diagnoses.json", "arrivals.csv"}


def test_quarantined_key_mismatch_counts(tmp_path, datafile):
    ev = events_frame([impression("v0", T0), conversion("v0", T0 + 5)])
    led = ledger_from_events(tmp_path / "l.sqlite", ev)
    q = pd.DataFrame({"source_event_id": ["a", "b", "c"], "source_row": [1, 2, 3], "reason": ["key_not_in_datafile"] * 3,
                      "detail": ["event key 'Purchase' is not in the datafile (revision 42); keys are case-sensitive: "
                                 "did you mean `purchase`?"] * 2 + ["event key 'zzz' is not in the datafile"]})
    rec = reconcile(led, truth(ev, datafile), datafile, as_of=LATER, quarantine=q)
    assert rec.diagnosis("key_mismatch").count == 2
    assert rec.diagnosis("key_not_in_datafile").count == 1
