"""Enriched Events Export (E3) from the sandbox's store: Parquet in the documented layout

    <out>/type=decisions/date=YYYY-MM-DD/experiment=<experiment id>/part-0.parquet
    <out>/type=events/date=YYYY-MM-DD/event=<event name>/part-0.parquet

with the documented columns (facts section 7). ``date`` is the UTC date of the event ``timestamp``.
An event's ``experiments`` lists the visitor's first decision of each experiment made before the
event (what Optimizely enriches it with). Each export replaces the previous one under ``out``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from .ingest import gc_paused
from .store import Store

__all__ = ["export_e3", "DECISION_SCHEMA", "EVENT_SCHEMA"]

_TS = pa.timestamp("ms", tz="UTC")
_ATTRS = pa.list_(pa.struct([("id", pa.string()), ("name", pa.string()), ("type", pa.string()), ("value", pa.string())]))
_EXPS = pa.list_(pa.struct([("campaign_id", pa.string()), ("experiment_id", pa.string()),
                            ("variation_id", pa.string()), ("is_holdback", pa.bool_())]))

DECISION_SCHEMA = pa.schema([
    ("uuid", pa.string()), ("timestamp", _TS), ("process_timestamp", _TS), ("visitor_id", pa.string()),
    ("session_id", pa.string()), ("account_id", pa.string()), ("campaign_id", pa.string()),
    ("experiment_id", pa.string()), ("variation_id", pa.string()), ("attributes", _ATTRS),
    ("user_ip", pa.string()), ("user_agent", pa.string()), ("referer", pa.string()), ("is_holdback", pa.bool_()),
    ("revision", pa.string()), ("client_engine", pa.string()), ("client_version", pa.string()),
])
EVENT_SCHEMA = pa.schema([
    ("uuid", pa.string()), ("timestamp", _TS), ("process_timestamp", _TS), ("visitor_id", pa.string()),
    ("session_id", pa.string()), ("account_id", pa.string()), ("experiments", _EXPS), ("entity_id", pa.string()),
    ("attributes", _ATTRS), ("user_ip", pa.string()), ("user_agent", pa.string()), ("referer", pa.string()),
    ("event_type", pa.string()), ("event_name", pa.string()), ("revenue", pa.int64()), ("value", pa.float64()),
    ("quantity", pa.int64()), ("tags", pa.map_(pa.string(), pa.string())), ("revision", pa.string()),
    ("client_engine", pa.string()), ("client_version", pa.string()),
])

_FIRST_DECISIONS = """
WITH first AS (
    SELECT visitor_id, experiment_id, campaign_id, variation_id, MIN(timestamp) AS ts
    FROM decisions WHERE running = 1 GROUP BY visitor_id, experiment_id
)
SELECT c.rowid, json_group_array(json_object('campaign_id', f.campaign_id, 'experiment_id', f.experiment_id,
                                             'variation_id', f.variation_id))
FROM conversions c JOIN first f ON f.visitor_id = c.visitor_id AND f.ts < c.timestamp
GROUP BY c.rowid
"""


def _attributes(blob: bytes | None) -> list[dict[str, str | None]]:
    if not blob:
        return []
    out = []
    for a in orjson.loads(blob):
        if isinstance(a, dict):
            v = a.get("value")
            out.append({"id": _s(a.get("entity_id")), "name": _s(a.get("key")), "type": _s(a.get("type")),
                        "value": None if v is None else v if isinstance(v, str) else orjson.dumps(v).decode()})
    return out


def _distinct(values: Any) -> tuple[list[Any], pa.Array]:
    """The distinct values (first-seen order) and, per row, the index of its value in them."""
    index: dict[Any, int] = {}
    rows = pa.array([index.setdefault(v, len(index)) for v in values], type=pa.int32())
    return list(index), rows


def _by_value(values: Any, convert: Any, type_: pa.DataType) -> pa.Array:
    """``pa.array([convert(v) for v in values])``, converting each distinct value once and building
    the rows with Arrow's ``take`` (C++): attributes repeat for every event of a visitor, first
    decisions for every event after them, tags often."""
    distinct, rows = _distinct(values)
    return pa.array([convert(v) for v in distinct], type=type_).take(rows)


def _s(v: Any) -> str | None:
    return None if v is None else str(v)


def _tags(blob: bytes | None) -> tuple[list[tuple[str, str]], int | None]:
    if not blob:
        return [], None
    tags = orjson.loads(blob)
    pairs = [(str(k), v if isinstance(v, str) else orjson.dumps(v).decode()) for k, v in tags.items()]
    q = tags.get("quantity")
    return pairs, q if type(q) is int else None


def _experiments(js: str | None) -> list[dict[str, Any]]:
    return [dict(e, is_holdback=False) for e in orjson.loads(js)] if js else []


def _write(table: pa.Table, base: Path, part_col: str, part_values: pa.Array) -> int:
    if table.num_rows == 0:
        return 0
    dates = pc.cast(pc.cast(table["timestamp"], pa.date32()), pa.string())  # UTC date; 10x strftime
    table = table.append_column("date", dates).append_column(part_col, part_values)
    ds.write_dataset(
        table, base, format="parquet", partitioning=["date", part_col], partitioning_flavor="hive",
        basename_template="part-{i}.parquet", existing_data_behavior="overwrite_or_ignore",
    )
    return table.num_rows


def _columns(cols: list[str], rows: list[tuple]) -> dict[str, tuple]:
    return dict(zip(cols, zip(*rows, strict=True), strict=True)) if rows else {c: () for c in cols}


def export_e3(store: Store, out_dir: str | Path) -> dict[str, Any]:
    """Write the E3 Parquet export; return counts and the two folders written."""
    with gc_paused():  # ~10M row values and tuples, none in a cycle: the collector only slowed it
        return _export(store, Path(out_dir))


def _export(store: Store, out: Path) -> dict[str, Any]:
    for sub in ("type=decisions", "type=events"):
        shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)

    cols, rows = store.query_columns(
        "SELECT uuid, timestamp, CAST(received_at * 1000 AS INTEGER) AS process_timestamp, visitor_id, account_id, "
        "campaign_id, experiment_id, variation_id, attributes, revision, client_name, client_version "
        "FROM decisions ORDER BY timestamp, rowid")
    d = _columns(cols, rows)
    n = len(rows)
    del rows
    nulls = pa.nulls(n, pa.string())
    decisions = pa.table({
        "uuid": d["uuid"], "timestamp": d["timestamp"], "process_timestamp": d["process_timestamp"],
        "visitor_id": d["visitor_id"], "session_id": nulls, "account_id": d["account_id"],
        "campaign_id": d["campaign_id"], "experiment_id": d["experiment_id"], "variation_id": d["variation_id"],
        "attributes": _by_value(d["attributes"], _attributes, _ATTRS),
        "user_ip": nulls, "user_agent": nulls, "referer": nulls, "is_holdback": pa.repeat(False, n),
        "revision": d["revision"], "client_engine": d["client_name"], "client_version": d["client_version"],
    }, schema=DECISION_SCHEMA)
    del d
    n_dec = _write(decisions, out / "type=decisions", "experiment", decisions["experiment_id"])
    del decisions

    enriched = dict(store.query(_FIRST_DECISIONS))
    cols, rows = store.query_columns(
        "SELECT rowid, uuid, timestamp, CAST(received_at * 1000 AS INTEGER) AS process_timestamp, visitor_id, "
        "account_id, entity_id, attributes, key, revenue, value, tags, revision, client_name, client_version "
        "FROM conversions ORDER BY timestamp, rowid")
    c = _columns(cols, rows)
    n = len(rows)
    del rows
    distinct, rows_of = _distinct(c["tags"])
    tags = [_tags(b) for b in distinct]
    nulls = pa.nulls(n, pa.string())
    events = pa.table({
        "uuid": c["uuid"], "timestamp": c["timestamp"], "process_timestamp": c["process_timestamp"],
        "visitor_id": c["visitor_id"], "session_id": nulls, "account_id": c["account_id"],
        "experiments": _by_value([enriched.get(r) for r in c["rowid"]], _experiments, _EXPS),
        "entity_id": c["entity_id"], "attributes": _by_value(c["attributes"], _attributes, _ATTRS),
        "user_ip": nulls, "user_agent": nulls, "referer": nulls,
        "event_type": pa.repeat("other", n), "event_name": c["key"], "revenue": c["revenue"],
        "value": c["value"], "quantity": pa.array([q for _, q in tags], pa.int64()).take(rows_of),
        "tags": pa.array([p for p, _ in tags], pa.map_(pa.string(), pa.string())).take(rows_of),
        "revision": c["revision"], "client_engine": c["client_name"], "client_version": c["client_version"],
    }, schema=EVENT_SCHEMA)
    n_ev = _write(events, out / "type=events", "event", events["event_name"])
    return {"out": str(out), "decisions": n_dec, "events": n_ev,
            "decisions_dir": str(out / "type=decisions"), "events_dir": str(out / "type=events")}
