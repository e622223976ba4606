"""The Results CSV export (``GET /v2/export/experiments/{id}/results/csv``).

One row per variation x metric, with the documented columns (facts section 7). The export does
not name the experiment in its rows, so the caller passes ``experiment_id`` (the loader takes it
from the file or URL name: ``.../experiments/<id>/...`` or ``<id>.csv`` / ``results_<id>.csv``).

``Metric Numerator Type`` decides the column (case-insensitive):
  contains "unique"                    -> unique_conversions
  contains "revenue"                   -> revenue (assumed minor units, like the Event API)
  contains "value" (a sum of value)    -> skipped: no column for it
  otherwise ("total conversions", "conversions", "count", "events") -> total_conversions
``Denominator Value`` is the variation's visitors when ``Metric Denominator Type`` mentions
visitors (the usual per-visitor metrics).
"""

from __future__ import annotations

import csv
import io
import logging
import re
from typing import Any

import pandas as pd

from ..errors import ResultsError
from ._schema import conform_results, empty_results, to_int

__all__ = ["parse_csv_results", "CSV_REQUIRED", "experiment_id_from_name"]

log = logging.getLogger(__name__)

CSV_REQUIRED = ("Variation ID", "Metric Event Name", "Metric Numerator Type", "Numerator Value")
_ID_IN_NAME = re.compile(r"(?:experiments?[/_=-]|^|[_-])(\d{3,})(?:[/_.-]|$)")


def experiment_id_from_name(name: str) -> str | None:
    m = _ID_IN_NAME.search(name.replace("\\", "/").rsplit("?", 1)[0])
    return m.group(1) if m else None


def _column_for(numerator_type: str) -> str | None:
    t = numerator_type.lower()
    if "unique" in t:
        return "unique_conversions"
    if "revenue" in t:
        return "revenue"
    if "value" in t:
        return None
    return "total_conversions"


def parse_csv_results(text: str, *, experiment_id: str | None, source: str = "results") -> pd.DataFrame:
    """CSV export text -> the RESULTS frame. Missing columns or ids -> ResultsError naming them."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in CSV_REQUIRED if c not in header]
    if missing:
        raise ResultsError(
            f"{source}: not a Results CSV export: missing column(s) {', '.join(repr(c) for c in missing)}; "
            "download it from the experiment's Results page (Export CSV) or /v2/export/experiments/{id}/results/csv"
        )
    if not experiment_id:
        raise ResultsError(f"{source}: the CSV export does not name its experiment: put the experiment id in the "
                           "file name (e.g. results_<experiment_id>.csv)")
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for lineno, raw in enumerate(reader, 2):
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        vid = row.get("Variation ID", "")
        if not vid:
            raise ResultsError(f"{source}:{lineno}: empty 'Variation ID'; re-export the CSV")
        column = _column_for(row.get("Metric Numerator Type", ""))
        value = to_int(row.get("Numerator Value"))
        if row.get("Numerator Value") and value is None:
            raise ResultsError(f"{source}:{lineno}: 'Numerator Value' {row['Numerator Value']!r} is not a number")
        key = row.get("Metric Event Name") or row.get("Metric Event ID") or ""
        cell = cells.setdefault((vid, key), {
            "experiment_id": experiment_id, "variation_id": vid, "variation_name": row.get("Variation Name") or None,
            "event_key": key or None, "event_id": row.get("Metric Event ID") or None,
            "start_time": row.get("Start time (UTC)") or None, "end_time": row.get("End time (UTC)") or None,
        })
        if "visitor" in row.get("Metric Denominator Type", "").lower():
            cell["visitors"] = to_int(row.get("Denominator Value"))
        if column is None:
            log.debug("%s:%d: numerator type %r has no column; skipped", source, lineno, row["Metric Numerator Type"])
            continue
        cell[column] = value
    if not cells:
        log.warning("%s: the CSV export has no rows", source)
        return empty_results()
    frame = conform_results(list(cells.values()))
    # visitors are per variation: fill metric rows whose denominator was not visitors
    frame["visitors"] = frame.groupby("variation_id")["visitors"].transform("max")
    return frame
