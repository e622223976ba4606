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
from ._chunk import NOT_JSON, RawColumns, clip, parse_json, string_array
from ._time import epoch_ms

__all__ = ["iter_jsonl_raw"]

_TRUNCATED = (EOFError, zlib.error, gzip.BadGzipFile)
_FIELDS = ("event_id", "type", "event", "user_id", "anonymous_id", "timestamp", "properties")


def _text(v: Any) -> str | None:
    if v is None or type(v) is str:
        return v
    if type(v) is bool:
        return "true" if v else "false"
    return repr(v) if type(v) is float else str(v)


class _Columns:
    """Column lists filled line by line: each parsed line is reduced to the fields the contract
    needs at once, so the big ``context`` objects are freed immediately (memory stays small and
    hot; holding 200k full events costs more than parsing them)."""

    def __init__(self) -> None:
        self.cols: dict[str, list[Any]] = {f: [] for f in _FIELDS}
        self.rows: list[int] = []
        self.rejected: list[tuple[int | None, str | None, str, str]] = []
        c = self.cols
        self._appends = [c[f].append for f in _FIELDS]

    def __len__(self) -> int:
        return len(self.rows) + len(self.rejected)

    def add(self, r: dict, lineno: int) -> None:
        g = r.get
        a_id, a_type, a_event, a_user, a_anon, a_ts, a_props = self._appends
        a_id(g("messageId", g("event_id", g("message_id"))))
        a_type(g("type"))
        a_event(g("event", g("name")))
        a_user(g("userId", g("user_id")))
        a_anon(g("anonymousId", g("anonymous_id")))
        a_ts(g("timestamp"))
        a_props(g("properties"))
        self.rows.append(lineno)

    def raw(self) -> RawColumns:
        c = self.cols
        ids = {}
        for col in ("event_id", "type", "event", "user_id", "anonymous_id"):
            vals = c[col]
            if not all(v is None or type(v) is str for v in vals):
                vals = [_text(v) for v in vals]
            ids[col] = pd.Series(string_array(vals))
        ts = c["timestamp"]
        ms, ok = epoch_ms(ts)
        return RawColumns(
            ids=ids, ts_ms=ms, ts_ok=ok, ts_raw=lambda idx: [ts[i] for i in idx],
            properties=c["properties"], source_row=np.asarray(self.rows, dtype="int64"), rejected=self.rejected,
        )


def iter_jsonl_raw(path: Path, gz: bool, chunk_rows: int) -> Iterator[RawColumns]:
    fh = gzip.open(path, "rb") if gz else open(path, "rb", buffering=1 << 20)  # noqa: SIM115
    cols = _Columns()
    lineno = 0
    with fh:
        try:
            for lineno, line in enumerate(fh, 1):  # noqa: B007 (lineno used after the loop)
                obj = parse_json(line)
                if type(obj) is dict:
                    cols.add(obj, lineno)
                elif obj is NOT_JSON and not line.strip():
                    continue
                else:
                    what = "not JSON" if obj is NOT_JSON else f"JSON {type(obj).__name__}, not an object"
                    text = line.decode("utf-8", errors="replace").rstrip("\r\n")
                    cols.rejected.append((lineno, None, Reason.MALFORMED_ROW.value,
                                          clip(f"line {lineno}: {what}: {text}")))
                if len(cols) >= chunk_rows:
                    yield cols.raw()
                    cols = _Columns()
        except _TRUNCATED as exc:
            if lineno == 0:
                raise ExportError(f"{path}: unreadable gzip data ({exc}); re-download or re-export the file") from None
            cols.rejected.append((lineno + 1, None, Reason.TRUNCATED_FILE.value,
                                  clip(f"the gzip stream ends early after line {lineno} ({exc}); the rest of the "
                                       "export is missing: re-download or re-export the file")))
    if len(cols):
        yield cols.raw()
