"""JSON Lines reader: orjson per line, then column-wise list comprehensions per chunk.

Blank lines are ignored (not rows). A line that is not a JSON object is quarantined as
``malformed_row`` with its line number. A gzip stream that ends early keeps every complete line
read before the cut and adds one ``truncated_file`` quarantine row (the lost tail is one row in
``rows_in``); a gzip file unreadable from its first bytes is an ExportError.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..contracts import Reason
from ..errors import ExportError
from ._chunk import NOT_JSON, RawColumns, clip, parse_json
from ._source import ALIASES
from ._time import epoch_ms

__all__ = ["iter_jsonl_raw"]

_TRUNCATED = (EOFError, zlib.error, gzip.BadGzipFile)


def _pick(recs: list[dict], names: tuple[str, ...]) -> list[Any]:
    vals = [r.get(names[0]) for r in recs]
    for name in names[1:]:
        missing = [i for i, v in enumerate(vals) if v is None]
        if not missing:
            break
        for i in missing:
            vals[i] = recs[i].get(name)
    return vals


def _text(v: Any) -> str | None:
    if v is None or type(v) is str:
        return v
    if type(v) is bool:
        return "true" if v else "false"
    return repr(v) if type(v) is float else str(v)


def _columns(recs: list[dict], rows: list[int], rejected: list) -> RawColumns:
    ids = {}
    for col in ("event_id", "type", "event", "user_id", "anonymous_id"):
        vals = _pick(recs, ALIASES[col])
        if not all(v is None or type(v) is str for v in vals):
            vals = [_text(v) for v in vals]
        ids[col] = pd.Series(vals, dtype="string")
    ts = _pick(recs, ALIASES["timestamp"])
    ms, ok = epoch_ms(ts)
    return RawColumns(
        ids=ids, ts_ms=ms, ts_ok=ok, ts_raw=lambda idx: [ts[i] for i in idx],
        properties=[r.get("properties") for r in recs],
        source_row=np.asarray(rows, dtype="int64"), rejected=rejected,
    )


def iter_jsonl_raw(path: Path, gz: bool, chunk_rows: int) -> Iterator[RawColumns]:
    fh = gzip.open(path, "rb") if gz else open(path, "rb", buffering=1 << 20)  # noqa: SIM115
    recs: list[dict] = []
    rows: list[int] = []
    rejected: list[tuple[int | None, str | None, str, str]] = []
    lineno = 0
    with fh:
        try:
            for lineno, line in enumerate(fh, 1):  # noqa: B007 (lineno used after the loop)
                obj = parse_json(line)
                if type(obj) is dict:
                    recs.append(obj)
                    rows.append(lineno)
                elif obj is NOT_JSON and not line.strip():
                    continue
                else:
                    what = "not JSON" if obj is NOT_JSON else f"JSON {type(obj).__name__}, not an object"
                    text = line.decode("utf-8", errors="replace").rstrip("\r\n")
                    rejected.append((lineno, None, Reason.MALFORMED_ROW.value, clip(f"line {lineno}: {what}: {text}")))
                if len(recs) + len(rejected) >= chunk_rows:
                    yield _columns(recs, rows, rejected)
                    recs, rows, rejected = [], [], []
        except _TRUNCATED as exc:
            if lineno == 0 and not recs:
                raise ExportError(f"{path}: unreadable gzip data ({exc}); re-download or re-export the file") from None
            rejected.append((lineno + 1, None, Reason.TRUNCATED_FILE.value,
                             clip(f"the gzip stream ends early after line {lineno} ({exc}); the rest of the export "
                                  "is missing: re-download or re-export the file")))
    if recs or rejected:
        yield _columns(recs, rows, rejected)
