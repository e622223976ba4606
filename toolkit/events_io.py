"""Read and write the mapping stage's files as JSON Lines: Optimizely events (the EVENTS contract)
and quarantined rows (QUARANTINE).

In frames ``tags`` is JSON text; in the file it is an object. Null fields are written as null so
every line has every contract field; output is byte-identical for the same frame.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import orjson
import pandas as pd

from .contracts import EVENTS, QUARANTINE, conform, empty
from .errors import ExportError

__all__ = ["write_events_jsonl", "read_events_jsonl", "iter_events_jsonl", "events_to_records",
           "write_quarantine_jsonl", "read_quarantine_jsonl"]


def _columns(frame: pd.DataFrame, schema: dict[str, str]) -> dict[str, list]:
    """The schema's columns of ``frame`` as plain lists (NA -> None)."""
    frame = conform(frame, schema)
    return {c: frame[c].astype(object).where(frame[c].notna(), None).tolist() for c in schema}


def events_to_records(frame: pd.DataFrame) -> list[dict]:
    """EVENTS rows as plain dicts (tags parsed to objects, NA -> None)."""
    cols = list(EVENTS)
    data = _columns(frame, EVENTS)
    tags = [orjson.loads(t) if t else {} for t in data["tags"]]
    data["tags"] = tags
    return [dict(zip(cols, row, strict=True)) for row in zip(*(data[c] for c in cols), strict=True)]


def write_events_jsonl(frame: pd.DataFrame, path: str | os.PathLike[str], *, append: bool = False) -> int:
    """Write EVENTS rows; returns the number written."""
    records = events_to_records(frame)
    with open(path, "ab" if append else "wb") as fh:
        for rec in records:
            fh.write(orjson.dumps(rec))
            fh.write(b"\n")
    return len(records)


def iter_events_jsonl(path: str | os.PathLike[str], *, chunk_rows: int = 200_000) -> Iterator[pd.DataFrame]:
    """Read an events file in chunks of EVENTS frames. A broken line is an error naming its line."""
    p = Path(path)
    try:
        fh = open(p, "rb")  # noqa: SIM115 (closed by the with below)
    except OSError as exc:
        raise ExportError(f"events file {p}: cannot read it ({exc.strerror}); pass the output of `toolkit map`") from None
    with fh:
        rows: list[dict] = []
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ExportError(f"events file {p}:{lineno}: not JSON ({exc}); regenerate it with `toolkit map`") from None
            if not isinstance(rec, dict) or "uuid" not in rec or "kind" not in rec:
                raise ExportError(f"events file {p}:{lineno}: not an Optimizely event line (needs kind, uuid, ...)")
            tags = rec.get("tags")
            rec["tags"] = orjson.dumps(tags, option=orjson.OPT_SORT_KEYS).decode() if tags else "{}"
            rows.append(rec)
            if len(rows) >= chunk_rows:
                yield conform(pd.DataFrame.from_records(rows), EVENTS)
                rows = []
        if rows:
            yield conform(pd.DataFrame.from_records(rows), EVENTS)


def read_events_jsonl(path: str | os.PathLike[str]) -> pd.DataFrame:
    chunks = list(iter_events_jsonl(path))
    if not chunks:
        return empty(EVENTS)
    return pd.concat(chunks, ignore_index=True)


def write_quarantine_jsonl(frame: pd.DataFrame, path: str | os.PathLike[str], *, append: bool = False) -> int:
    """QUARANTINE rows as JSON Lines (every field on every line, nulls as null)."""
    cols = list(QUARANTINE)
    data = _columns(frame, QUARANTINE)
    with open(path, "ab" if append else "wb") as fh:
        for row in zip(*(data[c] for c in cols), strict=True):
            fh.write(orjson.dumps(dict(zip(cols, row, strict=True))))
            fh.write(b"\n")
    return len(frame)


def read_quarantine_jsonl(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A quarantine file of ``toolkit map`` as a QUARANTINE frame (empty when the file is).
    A broken line is an error naming its line."""
    p = Path(path)
    try:
        lines = p.read_bytes().splitlines()
    except OSError as exc:
        raise ExportError(f"quarantine file {p}: cannot read it ({exc.strerror}); pass the file of `toolkit map`") from None
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise ExportError(f"quarantine file {p}:{n}: not JSON; regenerate it with `toolkit map`") from None
        if not isinstance(rec, dict) or "reason" not in rec:
            raise ExportError(f"quarantine file {p}:{n}: not a quarantine row (needs reason, source_row, ...)")
        rows.append(rec)
    return conform(pd.DataFrame.from_records(rows), QUARANTINE) if rows else empty(QUARANTINE)
