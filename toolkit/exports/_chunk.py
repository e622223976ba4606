"""From columns as read (any format) to a NORMALIZED frame plus a QUARANTINE frame.

Money stays text. A JSON number is parsed by orjson into a float and written back with ``repr``,
the shortest text that reads back as the same float: ``19.99`` -> ``"19.99"``, ``1200`` -> ``"1200"``,
``100.0`` -> ``"100.0"``. That is the text as written for every decimal of up to 15 significant digits
without exponent or trailing zeros; other spellings come back in their shortest form (``1e2`` ->
``"100.0"``, ``19.990`` -> ``"19.99"``), never as a rounded or truncated value. A string ``"19.99"``
is kept exactly; a Parquet decimal gives its exact text (``"19.990"``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa

from ..contracts import NORMALIZED, QUARANTINE, Reason

__all__ = ["ExportChunk", "RawColumns", "finish", "money_text", "parse_json", "clip", "NOT_JSON", "ID_COLUMNS"]

ID_COLUMNS = ("event_id", "type", "event", "user_id", "anonymous_id")
DETAIL_MAX = 200
_DUMP_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
NOT_JSON = object()  # parse_json's answer for text that is not JSON (None is the JSON null)


@dataclass(frozen=True)
class ExportChunk:
    """One chunk of an export: normalized events, quarantined rows, and how many rows were read.

    ``rows_in == len(events) + len(quarantine)`` always holds.
    """

    events: pd.DataFrame  # NORMALIZED
    quarantine: pd.DataFrame  # QUARANTINE
    rows_in: int

    def __repr__(self) -> str:
        return f"ExportChunk(rows_in={self.rows_in}, events={len(self.events)}, quarantine={len(self.quarantine)})"


@dataclass
class RawColumns:
    """One chunk as a reader produced it, before normalization (internal)."""

    ids: dict[str, pd.Series]  # ID_COLUMNS -> string Series, positions 0..n-1
    ts_ms: np.ndarray  # int64 epoch ms
    ts_ok: np.ndarray  # bool
    ts_raw: Callable[[np.ndarray], list[Any]]  # raw timestamp values at positions (for details)
    properties: Sequence[Any]  # dict | JSON text | None | anything else (-> malformed)
    source_row: np.ndarray  # int64
    rejected: list[tuple[int | None, str | None, str, str]] = field(default_factory=list)
    # rows refused while reading: (source_row, source_event_id, reason, detail)


def clip(text: str, limit: int = DETAIL_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def parse_json(data: bytes | str) -> Any:
    """orjson first; what it refuses (numbers beyond 64-bit / double range) goes to the standard
    library with decimals kept exact. Returns :data:`NOT_JSON` for text that is not JSON."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            return json.loads(data, parse_float=Decimal, parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return NOT_JSON


def _json_default(o: Any) -> Any:
    if isinstance(o, bytes):
        return o.decode("utf-8", errors="replace")
    return str(o)  # Decimal (exact text), timedelta, ...


def _dumps(obj: Any) -> str:
    try:
        return orjson.dumps(obj, option=_DUMP_OPTS, default=_json_default).decode()
    except TypeError:  # integers beyond 64 bits (from the fallback parser)
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def money_text(v: Any) -> str | None:
    """A money value as text, exactly as written where the source allows (see module doc)."""
    t = type(v)
    if t is str:
        return v
    if t is float:
        return repr(v)
    if t is int:
        return str(v)
    if v is None:
        return None
    if t is bool:
        return "true" if v else "false"
    if isinstance(v, Decimal | int | float):
        return str(v)
    return _dumps(v)


def _quantity(v: Any) -> int | None:
    t = type(v)
    if t is int:
        return v if -(2**63) <= v < 2**63 else None
    if t is float and v.is_integer() and abs(v) < 2**63:
        return int(v)
    if t is str and v.strip().lstrip("+-").isdigit():
        return _quantity(int(v))
    return None


def _as_dict(v: Any) -> dict | None:
    """A properties value -> dict, or None when it is not an object."""
    if type(v) is dict:
        return v
    if v is None:
        return {}
    if isinstance(v, str | bytes):
        try:
            parsed = orjson.loads(v)
        except orjson.JSONDecodeError:
            if not v.strip():
                return {}
            parsed = parse_json(v)
        return parsed if type(parsed) is dict else None
    return None


def _texts(values: list[Any]) -> list[str | None]:
    return [None if v is None else money_text(v) for v in values]


def _extract(dicts: list[dict], revenue_keys: Sequence[str]) -> dict[str, list[Any]]:
    """Column-wise extraction of the money fields and the canonical properties text."""
    rev: list[str | None] = []
    src: list[str | None] = []
    for d in dicts:
        for k in revenue_keys:
            v = d.get(k)
            if v is not None:
                rev.append(money_text(v))
                src.append(k)
                break
        else:
            rev.append(None)
            src.append(None)
    cur = [d.get("currency") for d in dicts]
    cur = [c if c is None else (c.strip().upper() or None) if type(c) is str else money_text(c) for c in cur]
    try:
        props = [orjson.dumps(d, option=_DUMP_OPTS).decode() for d in dicts]
    except TypeError:  # Decimal, bytes, huge integers: the careful path
        props = [_dumps(d) for d in dicts]
    qty = [d.get("quantity") for d in dicts]
    return {
        "properties": props,
        "revenue_raw": rev,
        "revenue_source": src,
        "currency": cur,
        "value_raw": _texts([d.get("value") for d in dicts]),
        "quantity": [None if q is None else _quantity(q) for q in qty],
    }


def string_array(values: list[Any]) -> pd.api.extensions.ExtensionArray:
    """A list of str/None as a pandas string array (built by Arrow: much faster than pd.array)."""
    return pd.array(pa.array(values, type=pa.string()).to_pandas(types_mapper=_as_string_dtype))


def _as_string_dtype(t: pa.DataType):
    return pd.StringDtype() if pa.types.is_string(t) else None


def _quarantine_frame(rows: list[tuple[int | None, str | None, str, str]]) -> pd.DataFrame:
    rows = sorted(rows, key=lambda r: (r[0] is None, r[0] or 0))
    cols = list(zip(*rows, strict=True)) if rows else [[], [], [], []]
    return pd.DataFrame({name: pd.array(list(vals), dtype=QUARANTINE[name])
                         for name, vals in zip(("source_row", "source_event_id", "reason", "detail"), cols,
                                               strict=True)})[list(QUARANTINE)]


def finish(raw: RawColumns, revenue_keys: Sequence[str]) -> ExportChunk:
    """Normalize one chunk: bad properties -> malformed_row, bad timestamps -> unparseable_timestamp."""
    n = len(raw.source_row)
    dicts = [_as_dict(v) for v in raw.properties]
    bad_props = np.array([d is None for d in dicts], dtype=bool) if n else np.zeros(0, dtype=bool)
    bad_ts = ~raw.ts_ok & ~bad_props
    keep = ~bad_props & ~bad_ts
    event_ids = raw.ids["event_id"]
    rejected = list(raw.rejected)
    for i in np.flatnonzero(bad_props):
        shown = raw.properties[i]
        shown = shown if isinstance(shown, str) else repr(shown)
        rejected.append((int(raw.source_row[i]), _get(event_ids, i), Reason.MALFORMED_ROW.value,
                         clip(f"properties is not a JSON object: {shown}")))
    bad_ts_idx = np.flatnonzero(bad_ts)
    for i, value in zip(bad_ts_idx, raw.ts_raw(bad_ts_idx), strict=True):
        what = "timestamp is missing" if value is None or value == "" else \
            f"timestamp {value!r} is not ISO 8601 or epoch seconds/ms"
        rejected.append((int(raw.source_row[i]), _get(event_ids, i), Reason.UNPARSEABLE_TIMESTAMP.value, clip(what)))

    all_kept = bool(keep.all())
    kept_dicts = dicts if all_kept else [dicts[i] for i in np.flatnonzero(keep)]
    extracted = _extract(kept_dicts, revenue_keys)  # type: ignore[arg-type]
    out: dict[str, Any] = {}
    for c in ID_COLUMNS:
        arr = raw.ids[c].array
        out[c] = arr if all_kept else arr[keep]
    out["timestamp"] = pd.array(raw.ts_ms if all_kept else raw.ts_ms[keep], dtype="Int64")
    for c, vals in extracted.items():
        out[c] = string_array(vals) if NORMALIZED[c] == "string" else pd.array(vals, dtype=NORMALIZED[c])
    out["source_row"] = pd.array(raw.source_row if all_kept else raw.source_row[keep], dtype="Int64")
    events = pd.DataFrame(out)[list(NORMALIZED)]
    quarantine = _quarantine_frame(rejected)
    rows_in = n + len(raw.rejected)
    if rows_in != len(events) + len(quarantine):  # pragma: no cover - a bug, never bad input
        raise AssertionError(f"rows lost in normalization: {rows_in} in, {len(events)} + {len(quarantine)} out")
    return ExportChunk(events=events, quarantine=quarantine, rows_in=rows_in)


def _get(s: pd.Series, i: int) -> str | None:
    v = s.iat[int(i)]
    return None if v is None or v is pd.NA else str(v)
