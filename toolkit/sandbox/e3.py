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


def _memo(fn):
    """Per-export cache: attributes repeat for every event of a visitor."""
    cache: dict = {}

    def get(blob):
        if blob not in cache:
            cache[blob] = fn(blob)
        return cache[blob]

    return get


def _s(v: Any) -> str | None:
    return None if v is None else str(v)


def _tags(blob: bytes | None) -> tuple[list[tuple[str, str]], int | None]:
    if not blob:
        return [], None
    tags = orjson.loads(blob)
    pairs = [(str(k), v if isinstance(v, str) else orjson.dumps(v).decode()) for k, v in tags.items()]
    q = tags.get("quantity")
    return pairs, q if type(q) is int else None


def _write(table: pa.Table, base: Path, part_col: str, part_values: pa.Array) -> int:
    if table.num_rows == 0:
        return 0
    dates = pc.strftime(table["timestamp"], format="%Y-%m-%d")
    table = table.append_column("date", dates).append_column(part_col, part_values)
    ds.write_dataset(
        table, base, format="parquet", partitioning=["date", part_col], partitioning_flavor="hive",
        basename_template="part-{i}.parquet", existing_data_behavior="overwrite_or_ignore",
    )
    return table.num_rows


def export_e3(store: Store, out_dir: str | Path) -> dict[str, Any]:
    """Write the E3 Parquet export; return counts and the two folders written."""
    out = Path(out_dir)
    for sub in ("type=decisions", "type=events"):
        shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)

    attributes = _memo(_attributes)
    cols, rows = store.query_columns(
        "SELECT uuid, timestamp, received_at, visitor_id, account_id, campaign_id, experiment_id, variation_id, "
        "attributes, revision, client_name, client_version FROM decisions ORDER BY timestamp, rowid")
    d = dict(zip(cols, zip(*rows, strict=True), strict=True)) if rows else {c: () for c in cols}
    n = len(rows)
    decisions = pa.table({
        "uuid": list(d["uuid"]), "timestamp": list(d["timestamp"]),
        "process_timestamp": [int(t * 1000) for t in d["received_at"]], "visitor_id": list(d["visitor_id"]),
        "session_id": [None] * n, "account_id": list(d["account_id"]), "campaign_id": list(d["campaign_id"]),
        "experiment_id": list(d["experiment_id"]), "variation_id": list(d["variation_id"]),
        "attributes": [attributes(b) for b in d["attributes"]],
        "user_ip": [None] * n, "user_agent": [None] * n, "referer": [None] * n, "is_holdback": [False] * n,
        "revision": list(d["revision"]), "client_engine": list(d["client_name"]),
        "client_version": list(d["client_version"]),
    }, schema=DECISION_SCHEMA)
    n_dec = _write(decisions, out / "type=decisions", "experiment", decisions["experiment_id"])

    experiments = _memo(lambda js: [dict(e, is_holdback=False) for e in orjson.loads(js)])
    enriched = {rowid: experiments(js) for rowid, js in store.query(_FIRST_DECISIONS)}
    cols, rows = store.query_columns(
        "SELECT rowid, uuid, timestamp, received_at, visitor_id, account_id, entity_id, attributes, key, revenue, "
        "value, tags, revision, client_name, client_version FROM conversions ORDER BY timestamp, rowid")
    c = dict(zip(cols, zip(*rows, strict=True), strict=True)) if rows else {k: () for k in cols}
    n = len(rows)
    tags = [_tags(b) for b in c["tags"]]  # tags differ per event: no memo
    events = pa.table({
        "uuid": list(c["uuid"]), "timestamp": list(c["timestamp"]),
        "process_timestamp": [int(t * 1000) for t in c["received_at"]], "visitor_id": list(c["visitor_id"]),
        "session_id": [None] * n, "account_id": list(c["account_id"]),
        "experiments": [enriched.get(r, []) for r in c["rowid"]],
        "entity_id": list(c["entity_id"]), "attributes": [attributes(b) for b in c["attributes"]],
        "user_ip": [None] * n, "user_agent": [None] * n, "referer": [None] * n,
        "event_type": ["other"] * n, "event_name": list(c["key"]), "revenue": list(c["revenue"]),
        "value": list(c["value"]), "quantity": [q for _, q in tags], "tags": [p for p, _ in tags],
        "revision": list(c["revision"]), "client_engine": list(c["client_name"]),
        "client_version": list(c["client_version"]),
    }, schema=EVENT_SCHEMA)
    n_ev = _write(events, out / "type=events", "event", events["event_name"])
    return {"out": str(out), "decisions": n_dec, "events": n_ev,
            "decisions_dir": str(out / "type=decisions"), "events_dir": str(out / "type=events")}
