"""Outputs: reconciliation.csv (or .parquet), diagnoses.json, arrivals.csv, and a text table."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ._model import Reconciliation

__all__ = ["write_outputs", "format_table"]

_SHOWN = ["experiment_key", "variation_key", "event_key", "metric", "sent", "delivered", "expected", "counted",
          "gap", "unexplained", "status", "diagnoses"]


def write_outputs(rec: Reconciliation, out_dir: str | Path, *, fmt: str = "csv") -> dict[str, Path]:
    """Write the table, the diagnoses and (with E3) the per-event arrivals; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    if fmt == "parquet":
        paths["table"] = out / "reconciliation.parquet"
        rec.table.to_parquet(paths["table"], index=False)
    else:
        paths["table"] = out / "reconciliation.csv"
        rec.table.to_csv(paths["table"], index=False)
    paths["diagnoses"] = out / "diagnoses.json"
    doc = {"summary": rec.summary(), "diagnoses": [d.to_dict() for d in rec.diagnoses]}
    paths["diagnoses"].write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    if rec.arrivals is not None:
        paths["arrivals"] = out / "arrivals.csv"
        rec.arrivals.to_csv(paths["arrivals"], index=False)
    return paths


def format_table(rec: Reconciliation, *, rows: int = 20) -> str:
    """The worst gaps first, as plain text for a terminal (notebooks can show ``rec.table``)."""
    t = rec.table.head(rows)[_SHOWN].copy()
    t = t.fillna({"experiment_key": "-", "variation_key": "(no decision)", "event_key": "(visitors)"})
    with pd.option_context("display.width", 200, "display.max_columns", None, "display.max_colwidth", 40):
        text = t.to_string(index=False)
    more = len(rec.table) - len(t)
    if more > 0:
        text += f"\n... {more} more row(s) in reconciliation.csv"
    lines = [text, "", "diagnoses:"]
    for d in rec.diagnoses:
        if d.count or d.code == "unexplained":
            lines.append(f"  {d.code:<26} {d.count:>8} {d.unit:<8} {d.title}")
            if d.count:
                lines.append(f"  {'':<26} fix: {d.fix}")
    return "\n".join(lines)
