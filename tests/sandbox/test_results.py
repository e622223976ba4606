"""Results API JSON and CSV export: hand-computed counts for each attribution rule."""

from __future__ import annotations

import csv
import io

import requests

from toolkit.sandbox import CSV_COLUMNS, Sandbox, Store, attribute

from .bodies import (
    CONTROL,
    EXPECTED,
    EXPECTED_VISITORS,
    T0,
    TREATMENT,
    body,
    conversion,
    decision,
    metric_table,
    post,
    scenario,
    visitor,
)
from .conftest import FIXTURE_DATAFILE


def _get(url: str, **kw) -> requests.Response:
    return requests.get(url, timeout=30, **kw)


def test_results_follow_the_attribution_rules(sandbox):
    assert post(sandbox.events_url, scenario()).status_code == 204
    r = _get(sandbox.results_url("50001"))
    assert r.status_code == 200
    res = r.json()
    assert res["experiment_id"] == 50001
    reach = res["reach"]
    assert reach["total_count"] == 5
    assert {vid: v["count"] for vid, v in reach["variations"].items()} == EXPECTED_VISITORS
    assert reach["variations"][CONTROL]["name"] == "checkout_control"
    assert metric_table(res) == EXPECTED
    # only the experiment's events are metrics (form_submit and signup are not attached to it)
    assert {m["name"] for m in res["metrics"]} == {"purchase", "add_to_cart", "begin_checkout"}
    revenue = [m for m in res["metrics"] if m["aggregator"] == "sum"]
    assert all(m["field"] == "revenue" for m in revenue)
    purchase_unique = next(m for m in res["metrics"] if m["name"] == "purchase" and m["aggregator"] == "unique")
    assert purchase_unique["event_id"] == 40001
    ctl = purchase_unique["results"][CONTROL]
    assert ctl == {"variation_id": CONTROL, "name": "checkout_control", "is_baseline": True, "level": "variation",
                   "samples": 3, "value": 2, "rate": 2 / 3}
    assert purchase_unique["results"][TREATMENT]["is_baseline"] is False


def test_other_experiments_and_paused_ones(sandbox):
    post(sandbox.events_url, scenario())
    pricing = _get(sandbox.results_url("50002")).json()
    assert pricing["reach"]["total_count"] == 1
    table = metric_table(pricing)
    assert table[("70003", "signup")] == (1, 1, 0)
    assert table[("70003", "purchase")] == (1, 1, 50)
    paused = _get(sandbox.results_url("50003")).json()  # decisions for a paused experiment do not count
    assert paused["reach"]["total_count"] == 0
    assert _get(sandbox.results_url("59999")).status_code == 404


def test_no_results_yet_is_200_with_zero_counts(sandbox):
    res = _get(sandbox.results_url("50001")).json()
    assert res["reach"]["total_count"] == 0 and res["start_time"] is None
    assert set(metric_table(res).values()) == {(0, 0, 0)}


def test_end_time_restricts_the_counted_events(sandbox):
    post(sandbox.events_url, scenario())
    res = _get(sandbox.results_url("50001"), params={"end_time": "2023-11-14T22:13:22.200Z"}).json()  # T0 + 2200 ms
    assert res["end_time"] == "2023-11-14T22:13:22.200Z"
    table = metric_table(res)
    assert table[(CONTROL, "purchase")] == (2, 2, 1000)  # v1 at 2000, v7 at 2000
    assert table[(TREATMENT, "purchase")] == (1, 1, 200)  # v2 at 1500; v3 at 3000 is after the end
    bad = _get(sandbox.results_url("50001"), params={"start_time": "yesterday"})
    assert bad.status_code == 400 and "start_time" in bad.json()["reason"]


def test_csv_export_has_the_documented_columns_and_the_same_numbers(sandbox):
    post(sandbox.events_url, scenario())
    r = _get(sandbox.results_csv_url("50001"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert list(rows[0]) == CSV_COLUMNS
    assert len(rows) == 3 * 3 * 2  # events x metrics x variations
    slot = {"unique conversions": 0, "total conversions": 1, "revenue": 2}
    table: dict = {}
    for row in rows:
        table.setdefault((row["Variation ID"], row["Metric Event Name"]), [0, 0, 0])[
            slot[row["Metric Numerator Type"]]] = int(row["Numerator Value"])
        assert int(row["Denominator Value"]) == EXPECTED_VISITORS[row["Variation ID"]]
        assert row["Is Baseline Variation"] == ("true" if row["Variation ID"] == CONTROL else "false")
    assert {k: tuple(v) for k, v in table.items()} == EXPECTED


def test_bearer_token_is_required_when_set(tmp_path):
    with Sandbox(tmp_path, datafile=FIXTURE_DATAFILE, api_token="tok-123456") as sb:
        assert _get(sb.results_url("50001")).status_code == 401
        assert _get(sb.results_url("50001"), headers={"Authorization": "Bearer nope"}).status_code == 401
        assert _get(sb.results_csv_url("50001")).status_code == 401
        assert _get(sb.results_url("50001"), headers={"Authorization": "Bearer tok-123456"}).status_code == 200
        assert "tok-123456" not in repr(sb) + repr(sb.api_token)


def test_processing_lag_hides_recent_events(tmp_path):
    with Sandbox(tmp_path, datafile=FIXTURE_DATAFILE, lag_seconds=3600) as sb:
        post(sb.events_url, scenario())
        res = _get(sb.results_url("50001")).json()
        assert res["reach"]["total_count"] == 0
        assert sb.stats()["events_stored"] == 22


def test_attribute_counts_only_rows_received_before_the_cutoff(tmp_path):
    """The lag rule on the store directly, with arrival times set by hand (no clock in the test)."""
    from toolkit.datafile import load_datafile
    from toolkit.sandbox import Catalog, check_body

    store = Store(tmp_path)
    catalog = Catalog.from_datafile(load_datafile(FIXTURE_DATAFILE))
    early = check_body(body(visitor("a", decision(0), conversion("purchase", 10, revenue=5))), catalog, received_at=100.0)
    late = check_body(body(visitor("b", decision(0), conversion("purchase", 10, revenue=7))), catalog, received_at=200.0)
    for p in (early, late):
        store.ingest(p.decisions, p.conversions, {})
    assert attribute(store, "50001", ["40001"], received_before=150.0).visitors == {CONTROL: 1}
    at_200 = attribute(store, "50001", ["40001"], received_before=200.0)
    assert at_200.visitors == {CONTROL: 2} and at_200.tally(CONTROL, "40001").revenue == 12
    assert attribute(store, "50001", ["40001"], start_ms=T0 + 1).visitors == {}  # decisions at T0 are before
    store.close()
