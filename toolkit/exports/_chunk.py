"""From columns as read (any format) to a NORMALIZED frame plus a QUARANTINE frame.

Money stays text (see ``_values``). The property columns are built column-wise by ``_props``;
a JSON text column from Arrow is parsed once per distinct text of the chunk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..contracts import NORMALIZED, PROPERTIES_CANONICAL, QUARANTINE, Reason
from ._props import Props
from ._values import clip

__all__ = ["ExportChunk", "RawColumns", "finish", "ID_COLUMNS"]

ID_COLUMNS = ("event_id", "type", "event", "user_id", "anonymous_id")
_STRING = pd.StringDtype()


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

    ids: dict[str, pa.Array]  # ID_COLUMNS -> Arrow string array, positions 0..n-1
    ts_ms: np.ndarray  # int64 epoch ms
    ts_ok: np.ndarray  # bool
    ts_raw: Callable[[np.ndarray], list[Any]]  # raw timestamp values at positions (for details)
    props: Props  # the property columns of every row, rows that are not a JSON object flagged
    source_row: np.ndarray  # int64
    rejected: list[tuple[int | None, str | None, str, str]] = field(default_factory=list)
    # rows refused while reading: (source_row, source_event_id, reason, detail)


def _pandas_string(arr: pa.Array | pa.ChunkedArray) -> pd.api.extensions.ExtensionArray:
    """An Arrow string column as the pandas ``string`` dtype (pyarrow storage: no copy)."""
    if _STRING.storage == "pyarrow" and pa.types.is_string(arr.type):
        return pd.arrays.ArrowStringArray(arr)
    return pd.array(arr.to_pandas(), dtype="string")  # pragma: no cover - pandas without pyarrow strings


def _quarantine_frame(rows: list[tuple[int | None, str | None, str, str]]) -> pd.DataFrame:
    rows = sorted(rows, key=lambda r: (r[0] is None, r[0] or 0))
    cols = list(zip(*rows, strict=True)) if rows else [[], [], [], []]
    return pd.DataFrame({name: pd.array(list(vals), dtype=QUARANTINE[name])
                         for name, vals in zip(("source_row", "source_event_id", "reason", "detail"), cols,
                                               strict=True)})[list(QUARANTINE)]


def finish(raw: RawColumns) -> ExportChunk:
    """Normalize one chunk: bad properties -> malformed_row, bad timestamps -> unparseable_timestamp."""
    n = len(raw.source_row)
    bad_props = raw.props.bad
    bad_ts = ~raw.ts_ok & ~bad_props
    keep = ~bad_props & ~bad_ts
    event_ids = raw.ids["event_id"]
    rejected = list(raw.rejected)
    for i in np.flatnonzero(bad_props).tolist():
        rejected.append((int(raw.source_row[i]), event_ids[i].as_py(), Reason.MALFORMED_ROW.value,
                         clip(f"properties is not a JSON object: {raw.props.shown[i]}")))
    bad_ts_idx = np.flatnonzero(bad_ts)
    for i, value in zip(bad_ts_idx.tolist(), raw.ts_raw(bad_ts_idx), strict=True):
        what = "timestamp is missing" if value is None or value == "" else \
            f"timestamp {value!r} is not ISO 8601 or epoch seconds/ms"
        rejected.append((int(raw.source_row[i]), event_ids[i].as_py(), Reason.UNPARSEABLE_TIMESTAMP.value, clip(what)))

    all_kept = bool(keep.all())
    keep_arrow = None if all_kept else pa.array(keep)
    props = raw.props.filter(keep)
    kept = n if all_kept else int(keep.sum())
    out: dict[str, Any] = {}
    for c in ID_COLUMNS:
        out[c] = _pandas_string(raw.ids[c] if all_kept else raw.ids[c].filter(keep_arrow))
    out["timestamp"] = _int64(raw.ts_ms if all_kept else raw.ts_ms[keep], np.zeros(kept, dtype=bool))
    for c in ("properties", "revenue_raw", "revenue_source", "currency", "value_raw"):
        out[c] = _pandas_string(props[c])
    out["quantity"] = _int64(*props["quantity"])
    out["source_row"] = _int64(raw.source_row if all_kept else raw.source_row[keep], np.zeros(kept, dtype=bool))
    events = pd.DataFrame({c: out[c] for c in NORMALIZED})
    events.attrs[PROPERTIES_CANONICAL] = raw.props.canonical
    quarantine = _quarantine_frame(rejected)
    rows_in = n + len(raw.rejected)
    if rows_in != len(events) + len(quarantine):  # pragma: no cover - a bug, never bad input
        raise AssertionError(f"rows lost in normalization: {rows_in} in, {len(events)} + {len(quarantine)} out")
    return ExportChunk(events=events, quarantine=quarantine, rows_in=rows_in)


def _int64(values: np.ndarray, mask: np.ndarray) -> pd.arrays.IntegerArray:
    return pd.arrays.IntegerArray(np.asarray(values, dtype="int64"), mask)
