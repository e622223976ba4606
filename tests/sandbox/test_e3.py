"""E3 export: the documented partition layout and columns, readable with pyarrow."""

from __future__ import annotations

from pathlib import Path

import pyarrow.dataset as ds
import requests

from toolkit.sandbox.e3 import DECISION_SCHEMA, EVENT_SCHEMA

from .bodies import TREATMENT, post, scenario

DECISION_COLUMNS = ["uuid", "timestamp", "process_timestamp", "visitor_id", "session_id", "account_id",
                    "campaign_id", "experiment_id", "variation_id", "attributes", "user_ip", "user_agent",
                    "referer", "is_holdback", "revision", "client_engine", "client_version"]
EVENT_COLUMNS = ["uuid", "timestamp", "process_timestamp", "visitor_id", "session_id", "account_id",
                 "experiments", "entity_id", "attributes", "user_ip", "user_agent", "referer", "event_type",
                 "event_name", "revenue", "value", "quantity", "tags", "revision", "client_engine",
                 "client_version"]


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.parquet"))


def test_e3_layout_and_columns(sandbox, tmp_path):
    post(sandbox.events_url, scenario())
    summary = sandbox.export_e3(tmp_path / "e3")
    assert (summary["decisions"], summary["events"]) == (8, 14)
    root = tmp_path / "e3"
    assert _files(root) == [
        "type=decisions/date=2023-11-14/experiment=50001/part-0.parquet",
        "type=decisions/date=2023-11-14/experiment=50002/part-0.parquet",
        "type=decisions/date=2023-11-14/experiment=50003/part-0.parquet",
        "type=events/date=2023-11-14/event=add_to_cart/part-0.parquet",
        "type=events/date=2023-11-14/event=form_submit/part-0.parquet",
        "type=events/date=2023-11-14/event=purchase/part-0.parquet",
        "type=events/date=2023-11-14/event=signup/part-0.parquet",
    ]
    one = ds.dataset(root / "type=decisions/date=2023-11-14/experiment=50001", format="parquet").to_table()
    assert one.column_names == DECISION_COLUMNS and one.schema.equals(DECISION_SCHEMA)
    assert one.num_rows == 6
    events = ds.dataset(root / "type=events", format="parquet", partitioning="hive").to_table()
    assert events.column_names == [*EVENT_COLUMNS, "date", "event"]
    assert events.select(EVENT_COLUMNS).schema.equals(EVENT_SCHEMA)
    assert str(events.schema.field("revenue").type) == "int64"
    rows = events.to_pylist()
    purchases = [r for r in rows if r["event_name"] == "purchase"]
    assert sum(r["revenue"] or 0 for r in purchases) == 1000 + 500 + 7 + 11 + 200 + 300 + 999 + 5 + 50
    v3 = next(r for r in purchases if r["visitor_id"] == "v3")
    # enriched with the visitor's first decision of each experiment made before the event
    assert [(e["experiment_id"], e["variation_id"]) for e in v3["experiments"]] == [("50001", TREATMENT)]
    assert dict(next(r for r in purchases if r["revenue"] == 1000)["tags"]) == {"revenue": "1000"}


def test_e3_over_http_writes_under_the_data_dir(sandbox):
    post(sandbox.events_url, scenario())
    r = requests.post(f"{sandbox.url}/admin/e3", timeout=60)
    assert r.status_code == 200
    assert Path(r.json()["out"]) == sandbox.data_dir / "e3"
    assert len(_files(sandbox.data_dir / "e3")) == 7
    # a second export replaces the first
    requests.post(f"{sandbox.url}/admin/reset", timeout=30)
    assert requests.post(f"{sandbox.url}/admin/e3", timeout=60).json()["decisions"] == 0
    assert _files(sandbox.data_dir / "e3") == []
