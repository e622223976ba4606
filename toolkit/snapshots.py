"""The JSON of Event API snapshots, built for a whole column of events at once with Arrow kernels.

One snapshot per EVENTS row, exactly what ``orjson.dumps`` gives for the dict the SDK's
``EventFactory`` builds (field names, key order, types; ``revenue``, ``value`` and ``tags`` left
out when null, ``decisions`` only on impressions):

- conversion: ``{"events":[{"entity_id","uuid","key","timestamp"[,"revenue"][,"value"][,"tags"]}]}``
- impression: ``{"events":[{"entity_id","uuid","key":"campaign_activated","timestamp"}],
  "decisions":[{"campaign_id","experiment_id","variation_id","metadata":{"flag_key","rule_key",
  "rule_type","variation_key","enabled"}}]}``

Fast path: the text is concatenated from literal pieces and the columns (Arrow's
``binary_join_element_wise``), strings quoted as they are. A row whose strings would need a JSON
escape (a quote, a backslash, a control character) or are null takes the exact path instead:
its snapshot dict serialized by orjson (:func:`snapshot_dict`, the reference the fast path must
equal). Tags are already JSON text and go in as they are. :func:`visitor_pieces` adds the visitor
framing, so that the bytes of consecutive rows of one body are simply adjacent (see
:mod:`toolkit.payload`).
"""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .combos import combination_codes
from .contracts import CAMPAIGN_ACTIVATED

__all__ = ["snapshot_json", "snapshot_dict", "visitor_pieces", "visitor_entry", "json_strings"]

_STR = pa.large_string()
# bytes orjson escapes inside a string (it leaves every other byte, non-ASCII UTF-8 included, as is)
_ESCAPED = np.zeros(256, dtype=bool)
_ESCAPED[:0x20] = _ESCAPED[ord('"')] = _ESCAPED[ord("\\")] = True


def _lit(text: str) -> pa.Scalar:
    return pa.scalar(text, _STR)


def _cat(*parts: pa.Array | str, skip_nulls: bool = False) -> pa.Array:
    """Element-wise concatenation of arrays and literal texts: null where an array part is null, or
    with ``skip_nulls`` those parts left out (no copy of a column just to fill its nulls)."""
    return pc.binary_join_element_wise(*(_lit(p) if isinstance(p, str) else p for p in parts), _lit(""),
                                       null_handling="skip" if skip_nulls else "emit_null")


def _arrow(s: pd.Series, dtype: pa.DataType = _STR) -> pa.Array:
    arr = pa.array(s.array)
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    return arr.cast(dtype) if arr.type != dtype else arr


def _needs_escape(arr: pa.Array) -> np.ndarray:
    """Rows whose text holds a byte orjson would escape (null rows: False)."""
    n = len(arr)
    out = np.zeros(n, dtype=bool)
    data = arr.buffers()[2]
    if n == 0 or data is None:
        return out
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset:arr.offset + n + 1]
    raw = np.frombuffer(data, dtype=np.uint8)[offsets[0]:offsets[-1]]
    if not ((raw < 0x20).any() or (raw == 0x22).any() or (raw == 0x5C).any()):  # the common case
        return out
    hits = np.flatnonzero(_ESCAPED[raw])
    if len(hits):
        out[np.searchsorted(offsets, hits + offsets[0], side="right") - 1] = True
    return out & pc.is_valid(arr).to_numpy(zero_copy_only=False)


def json_strings(arr: pa.Array) -> pa.Array:
    """The JSON text of each string (``"..."``), ``null`` for nulls."""
    arr = arr.cast(_STR) if arr.type != _STR else arr
    quoted = _cat('"', arr, '"')
    needs = _needs_escape(arr)
    if needs.any():
        escaped = [orjson.dumps(s).decode() for s in arr.filter(pa.array(needs)).to_pylist()]
        quoted = pc.replace_with_mask(quoted, pa.array(needs), pa.array(escaped, _STR))
    return pc.fill_null(quoted, "null")


def _or_empty(arr: pa.Array) -> pa.Array:
    return pc.fill_null(arr, "")


def _or(arr: pa.Array, fallback: pa.Array) -> pa.Array:
    """``arr or fallback``: null or empty text -> fallback."""
    return pc.if_else(pc.fill_null(pc.equal(arr, ""), True), fallback, arr)


def _variation_id(v: object) -> str | None:
    # the SDK's event_id_normalizer: a variation id must be a string of digits, else null
    return v if isinstance(v, str) and v.isascii() and v.isdigit() else None


def snapshot_dict(row: dict) -> dict:
    """The snapshot of one EVENTS row (plain Python values, None for nulls), as the SDK builds it."""
    if row["kind"] == "impression":
        exp_id = row["experiment_id"] or ""
        campaign = row["campaign_id"] or exp_id  # the SDK's normalize_campaign_id
        enabled = row["enabled"]
        return {
            "events": [{"entity_id": campaign, "uuid": row["uuid"], "key": CAMPAIGN_ACTIVATED,
                        "timestamp": row["timestamp"]}],
            "decisions": [{
                "campaign_id": campaign,
                "experiment_id": exp_id,
                "variation_id": _variation_id(row["variation_id"]),
                "metadata": {
                    "flag_key": row["flag_key"] or "",
                    "rule_key": row["rule_key"] or "",
                    "rule_type": row["rule_type"] or "",
                    "variation_key": row["variation_key"] or "",
                    "enabled": bool(enabled) if enabled is not None else False,
                },
            }],
        }
    ev: dict = {"entity_id": row["entity_id"], "uuid": row["uuid"], "key": row["key"], "timestamp": row["timestamp"]}
    if row["revenue"] is not None:
        ev["revenue"] = int(row["revenue"])
    if row["value"] is not None:
        ev["value"] = float(row["value"])
    t = row["tags"]
    if t and t != "{}":
        ev["tags"] = orjson.Fragment(t)
    return {"events": [ev]}


def _floats(values: pd.Series) -> pa.Array:
    """orjson's text of each float (Arrow's cast writes some differently), null where null."""
    if not values.notna().any():  # no value at all (most exports): no Python object per row
        return pa.nulls(len(values), _STR)
    floats = values.to_numpy(dtype=object, na_value=None)
    present = floats != None  # noqa: E711 (element-wise)
    out = np.full(len(floats), None, dtype=object)
    out[present] = [orjson.dumps(float(v)).decode() for v in floats[present].tolist()]
    return pa.array(out, _STR)


def _optional(name: str, text: pa.Array) -> pa.Array:
    """``,"name":text`` where ``text`` is not null, else null (left out by ``_cat(skip_nulls=True)``)."""
    return _cat(f',"{name}":', text)


def _only(arr: pa.Array, keep: pa.Array) -> pa.Array:
    """``arr`` with null where ``keep`` (bool, no nulls) is false: the same data buffers under a
    new validity bitmap (``if_else`` copied every text), when the array starts at its buffers' start."""
    if arr.offset or keep.offset or arr.null_count or not pa.types.is_large_string(arr.type):
        return pc.if_else(keep, arr, pa.scalar(None, arr.type))
    _, offsets, data = arr.buffers()
    return pa.LargeStringArray.from_buffers(len(arr), offsets, data, keep.buffers()[1])


def _conversions(col: dict[str, pa.Array], ts: pa.Array) -> tuple[pa.Array, np.ndarray]:
    tags = col["tags"]
    has_tags = pc.fill_null(pc.and_(pc.not_equal(tags, ""), pc.not_equal(tags, "{}")), False)
    # null ids would be left out here: those rows are rebuilt exactly (below)
    text = _cat('{"events":[{"entity_id":"', col["entity_id"], '","uuid":"', col["uuid"], '","key":"', col["key"],
                '","timestamp":', ts,
                _optional("revenue", pc.cast(col["revenue"], _STR)),
                _optional("value", col["value"]),
                _optional("tags", _only(tags, has_tags)), "}]}", skip_nulls=True)
    exact = np.zeros(len(tags), dtype=bool)
    for c in ("entity_id", "uuid", "key"):
        exact |= _needs_escape(col[c]) | pc.is_null(col[c]).to_numpy(zero_copy_only=False)
    return text, exact


_DECISION_COLUMNS = ("campaign_id", "experiment_id", "variation_id", "flag_key", "rule_key", "rule_type",
                     "variation_key", "enabled")


def _impressions(col: dict[str, pa.Array], ts: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Impressions share their decision with many others: the text around the uuid and timestamp
    is built once per distinct combination of the decision columns, then taken for each row."""
    code, first = combination_codes([col[c] for c in _DECISION_COLUMNS], len(col["uuid"]))
    rep = {c: col[c].take(pa.array(first)) for c in _DECISION_COLUMNS}
    exp_id = _or_empty(rep["experiment_id"])
    campaign = _or(rep["campaign_id"], exp_id)
    vid = rep["variation_id"]
    digits = pc.fill_null(pc.match_substring_regex(vid, r"^[0-9]+$"), False)
    vid = pc.if_else(digits, _cat('"', vid, '"'), _lit("null"))
    enabled = pc.if_else(pc.fill_null(rep["enabled"], False), _lit("true"), _lit("false"))
    meta = {c: _or_empty(rep[c]) for c in ("flag_key", "rule_key", "rule_type", "variation_key")}
    head = _cat('{"events":[{"entity_id":"', campaign, '","uuid":"')
    tail = _cat('}],"decisions":[{"campaign_id":"', campaign, '","experiment_id":"', exp_id,
                '","variation_id":', vid, ',"metadata":{"flag_key":"', meta["flag_key"],
                '","rule_key":"', meta["rule_key"], '","rule_type":"', meta["rule_type"],
                '","variation_key":"', meta["variation_key"], '","enabled":', enabled, "}}]}")
    rows = pa.array(code)
    text = _cat(head.take(rows), col["uuid"], '","key":' + orjson.dumps(CAMPAIGN_ACTIVATED).decode() + ',"timestamp":',
                ts, tail.take(rows))
    rep_exact = np.zeros(len(first), dtype=bool)
    for arr in (campaign, exp_id, *meta.values()):
        rep_exact |= _needs_escape(arr)
    exact = rep_exact[code] | _needs_escape(col["uuid"]) | pc.is_null(col["uuid"]).to_numpy(zero_copy_only=False)
    return text, exact


_CONVERSION_COLUMNS = ("uuid", "timestamp", "key", "entity_id", "revenue", "value", "tags")
_IMPRESSION_COLUMNS = ("uuid", "timestamp", "campaign_id", "experiment_id", "variation_id", "flag_key", "rule_key",
                       "rule_type", "variation_key", "enabled")
_TYPES = {"timestamp": pa.int64(), "revenue": pa.int64(), "enabled": pa.bool_()}


def _part(events: pd.DataFrame, rows: np.ndarray | None, names: tuple[str, ...], build) -> pa.Array:
    """The snapshots of the rows where the mask ``rows`` is true (all rows when None), built by
    ``build`` from the named columns."""
    col = {c: _floats(events["value"]) if c == "value" else _arrow(events[c], _TYPES.get(c, _STR)) for c in names}
    if rows is not None:
        mask = pa.array(rows)
        col = {c: a.filter(mask) for c, a in col.items()}
    ts = pc.fill_null(pc.cast(col["timestamp"], _STR), "null")
    text, exact = build(col, ts)
    if exact.any():  # the rows with escapes or nulls: their dicts through orjson
        sub = events.iloc[(np.flatnonzero(rows) if rows is not None else np.arange(len(events)))[exact]]
        values = [sub[c].to_numpy(dtype=object, na_value=None) for c in sub.columns]
        exact_text = [orjson.dumps(snapshot_dict(dict(zip(sub.columns, r, strict=True)))).decode()
                      for r in zip(*values, strict=True)]
        text = pc.replace_with_mask(text, pa.array(exact), pa.array(exact_text, _STR))
    return text


def snapshot_json(events: pd.DataFrame) -> pa.Array:
    """One snapshot's JSON text per row of an EVENTS frame (in its row order)."""
    is_imp = events["kind"].eq("impression").fillna(False).to_numpy(dtype=bool)
    if not is_imp.any():
        return _part(events, None, _CONVERSION_COLUMNS, _conversions)
    if is_imp.all():
        return _part(events, None, _IMPRESSION_COLUMNS, _impressions)
    conv = _part(events, ~is_imp, _CONVERSION_COLUMNS, _conversions)
    imp = _part(events, is_imp, _IMPRESSION_COLUMNS, _impressions)
    order = np.empty(len(events), dtype=np.int64)  # row i: its rank among its kind's rows
    order[~is_imp] = np.arange(len(conv))
    order[is_imp] = len(conv) + np.arange(len(imp))
    return pa.concat_arrays([conv, imp]).take(pa.array(order))


def visitor_entry(visitor_id: str, snaps: list[bytes], attrs: bytes) -> bytes:
    """One visitor's entry in a body (key order of the SDK's Visitor: snapshots, attributes, visitor_id)."""
    return b'{"snapshots":[' + b",".join(snaps) + b'],"attributes":' + attrs + b',"visitor_id":' + \
        orjson.dumps(visitor_id) + b"}"


def visitor_pieces(snaps: pa.Array, visitor_ids: pa.Array, attrs: bytes) -> pa.Array:
    """Each snapshot framed so that the pieces of a run of whole visitors, concatenated, are their
    entries each preceded by a comma: a visitor's first piece opens ``,{"snapshots":[``, the others
    start with ``,``, its last piece closes the entry with the attributes and the visitor id.
    ``visitor_ids`` (no nulls) must hold each visitor's rows together."""
    n = len(snaps)
    vids = visitor_ids.cast(_STR) if visitor_ids.type != _STR else visitor_ids
    change = np.ones(n + 1, dtype=bool)
    if n > 1:
        change[1:n] = pc.not_equal(vids.slice(1), vids.slice(0, n - 1)).to_numpy(zero_copy_only=False)
    first, last = change[:n], change[1:]
    lead = pc.if_else(pa.array(first), _lit(',{"snapshots":['), _lit(","))
    closing = _cat('],"attributes":' + attrs.decode() + ',"visitor_id":', json_strings(vids.filter(pa.array(last))),
                   "}")
    tail = pc.replace_with_mask(_empty(n), pa.array(last), closing)
    return _cat(lead, snaps, tail)


def _empty(n: int) -> pa.Array:
    """n empty texts."""
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(np.zeros(n + 1, dtype=np.int64)), pa.py_buffer(b""))
