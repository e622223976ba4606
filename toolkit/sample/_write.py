"""Write the sample's events as JSONL (canonical camelCase), CSV and Parquet (warehouse snake_case),
and count what the manifest reports, from the events as written."""

from __future__ import annotations

import csv
import hashlib
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from ._generate import ACTIVATION, UNKNOWN_CURRENCY

__all__ = ["write_jsonl", "write_csv", "write_parquet", "count_events", "CSV_COLUMNS"]

CSV_COLUMNS = ("event_id", "type", "event", "anonymous_id", "user_id", "timestamp", "received_at", "sent_at",
               "context", "properties", "traits", "source_id")
_AGENTS = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64)", "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X)",
           "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5)")


def _iso(ms: int) -> str:
    d = datetime.fromtimestamp(ms / 1000, UTC)
    return f"{d:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def _times(e: dict) -> tuple[str, int, int]:
    """(timestamp text, sentAt ms, receivedAt ms); a locale-style text for the unparseable one."""
    t = e["t"]
    h = hashlib.blake2s(e["messageId"].encode(), digest_size=2).digest()
    sent = t + h[0] * 4
    text = _iso(t)
    if "unparseable_timestamp" in e["_tags"]:
        d = datetime.fromtimestamp(t / 1000, UTC)
        text = f"{d:%d/%m/%Y %H:%M}"
    return text, sent, sent + 100 + h[1]


def _context(e: dict) -> dict[str, Any]:
    h = hashlib.blake2s(e["messageId"].encode(), digest_size=2).digest()
    ctx: dict[str, Any] = {"locale": ("en-GB", "en-US", "de-DE")[h[0] % 3], "userAgent": _AGENTS[h[1] % len(_AGENTS)]}
    if e["type"] == "page":
        ctx["page"] = {"path": e["properties"]["path"], "url": f"https://shop.example.com{e['properties']['path']}"}
    return ctx


def _record(e: dict) -> dict[str, Any]:
    ts, sent, received = _times(e)
    rec: dict[str, Any] = {"messageId": e["messageId"], "type": e["type"]}
    for k in ("event", "name", "userId", "anonymousId", "properties", "traits"):
        if e.get(k) is not None:
            rec[k] = e[k]
    rec["context"] = _context(e)
    rec.update(timestamp=ts, sentAt=_iso(sent), receivedAt=_iso(received))
    return rec


def write_jsonl(events: list[dict], path: Path) -> dict[str, int]:
    """One event per line; one line cut in the middle (a writer that died) after the middle event."""
    lines = [orjson.dumps(_record(e)) for e in events]
    cut = lines[len(lines) // 2]
    lines.insert(len(lines) // 2 + 1, cut[: len(cut) // 2])
    path.write_bytes(b"\n".join(lines) + b"\n")
    return {"rows": len(lines), "malformed_json_line": 1}


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode() if obj is not None else ""


def write_csv(events: list[dict], path: Path) -> dict[str, int]:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(CSV_COLUMNS)
        for e in events:
            ts, sent, received = _times(e)
            w.writerow([e["messageId"], e["type"], e.get("event") or e.get("name") or "", e["anonymousId"] or "",
                        e["userId"] or "", ts, _iso(received), _iso(sent), _dumps(_context(e)),
                        _dumps(e.get("properties")), _dumps(e.get("traits")), "web"])
    return {"rows": len(events), "malformed_json_line": 0}


def write_parquet(events: list[dict], path: Path) -> dict[str, int]:
    """Warehouse types: real timestamps (the unparseable one is null), JSON text for nested objects."""
    stamp = pa.timestamp("ms", tz="UTC")
    times = [_times(e) for e in events]
    table = pa.table({
        "event_id": pa.array([e["messageId"] for e in events], pa.string()),
        "type": pa.array([e["type"] for e in events], pa.string()),
        "event": pa.array([e.get("event") or e.get("name") for e in events], pa.string()),
        "anonymous_id": pa.array([e["anonymousId"] for e in events], pa.string()),
        "user_id": pa.array([e["userId"] for e in events], pa.string()),
        "timestamp": pa.array([None if "unparseable_timestamp" in e["_tags"] else e["t"] for e in events], stamp),
        "received_at": pa.array([r for _, _, r in times], stamp),
        "sent_at": pa.array([s for _, s, _ in times], stamp),
        "context": pa.array([_dumps(_context(e)) for e in events], pa.string()),
        "properties": pa.array([_dumps(e.get("properties")) or None for e in events], pa.string()),
        "traits": pa.array([_dumps(e.get("traits")) or None for e in events], pa.string()),
        "source_id": pa.array(["web"] * len(events), pa.string()),
    })
    pq.write_table(table, path, compression="zstd")
    return {"rows": len(events), "malformed_json_line": 0}


def count_events(events: list[dict]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(kinds, defects) as the manifest reports them, computed from the events as written."""
    tags = Counter(t for e in events for t in e["_tags"])
    tracks = [e for e in events if e["type"] == "track"]
    orders = [e for e in events if e.get("_order")]
    anons: dict[str, set[str]] = defaultdict(set)
    for e in events:
        if e["userId"] and e["anonymousId"]:
            anons[e["userId"]].add(e["anonymousId"])
    first_decision: dict[str, int] = {}
    conversions: dict[str, list[int]] = defaultdict(list)
    for e in tracks:
        visitor = e["userId"] or e["anonymousId"]
        if not visitor:
            continue
        if e.get("event") in ACTIVATION:
            first_decision[visitor] = min(first_decision.get(visitor, e["t"]), e["t"])
        else:
            conversions[visitor].append(e["t"])
    unbucketed = [v for v in conversions if v not in first_decision]
    kinds = {
        "by_type": dict(sorted(Counter(e["type"] for e in events).items())),
        "track_by_name": dict(sorted(Counter(e["event"] for e in tracks).items())),
        "orders": len(orders),
        "orders_by_currency": dict(sorted(Counter(e["properties"]["currency"] for e in orders).items())),
        "orders_by_money_property": dict(sorted(Counter(e["_money_key"] for e in orders).items())),
        "visitors": len({e["userId"] or e["anonymousId"] for e in events if e["userId"] or e["anonymousId"]}),
        "anonymous_ids": len({e["anonymousId"] for e in events if e["anonymousId"]}),
        "user_ids": len({e["userId"] for e in events if e["userId"]}),
    }
    defects = {
        "miscased_keys": dict(sorted(Counter(e["event"] for e in tracks if "miscased" in e["_tags"]).items())),
        "decimal_revenue": tags["revenue_decimal"],
        "string_revenue": tags["revenue_string"],
        "integer_revenue": tags["revenue_integer"],
        "jpy_orders": kinds["orders_by_currency"].get("JPY", 0),
        "kwd_orders": kinds["orders_by_currency"].get("KWD", 0),
        "unknown_currency": kinds["orders_by_currency"].get(UNKNOWN_CURRENCY, 0),
        "negative_revenue": tags["negative_revenue"],
        "missing_ids": tags["missing_ids"],
        "multi_anonymous_persons": sum(1 for s in anons.values() if len(s) > 1),
        "extra_anonymous_ids": sum(len(s) - 1 for s in anons.values()),
        "unbucketed_visitors": len(unbucketed),
        "unbucketed_conversions": sum(len(conversions[v]) for v in unbucketed),
        "conversion_before_decision": sum(
            1 for v, ts in conversions.items() if v in first_decision for t in ts if t < first_decision[v]),
    }
    return kinds, defects
