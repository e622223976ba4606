"""The normalized results frame every loader returns, and small parsing helpers they share."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ..contracts import conform, empty

__all__ = ["RESULTS", "empty_results", "conform_results", "to_utc", "to_int"]

# One row per experiment x variation x metric event. Visitors repeat on each metric row of a
# variation; a variation with no metric has one row with a null event_key.
RESULTS: dict[str, str] = {
    "experiment_id": "string",
    "variation_id": "string",
    "variation_name": "string",
    "event_key": "string",  # the metric's event name (the datafile key when the event id is known)
    "event_id": "string",
    "visitors": "Int64",
    "unique_conversions": "Int64",
    "total_conversions": "Int64",
    "revenue": "Int64",  # minor units (cents), as the Event API receives it
    "start_time": "datetime64[ms, UTC]",
    "end_time": "datetime64[ms, UTC]",
}

KEYS = ["experiment_id", "variation_id", "event_key"]


def empty_results() -> pd.DataFrame:
    return empty(RESULTS)


def conform_results(rows: list[dict[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame.from_records(rows)
    if frame.empty:
        return empty_results()
    for col in ("start_time", "end_time"):
        if col in frame.columns:
            frame[col] = to_utc(frame[col])
    return conform(frame, RESULTS).reset_index(drop=True)


def to_utc(values: pd.Series | list[Any]) -> pd.Series:
    """ISO strings, datetimes or epoch milliseconds -> UTC timestamps (unparseable -> NaT)."""
    s = pd.Series(values)
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        out = pd.to_datetime(s, unit="ms", utc=True, errors="coerce")
    else:
        out = pd.to_datetime(s, utc=True, errors="coerce", format="mixed")
    return out.astype("datetime64[ms, UTC]")


def to_int(value: Any) -> int | None:
    """A count or an amount as an int: numbers, numeric text ("1,234", "$12"), else None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else round(value)
    text = str(value).strip().replace(",", "").lstrip("$€£¥")
    if not text or text.lower() in ("nan", "none", "null", "-", "n/a"):
        return None
    try:
        return round(float(text))
    except ValueError:
        return None
