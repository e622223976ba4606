"""CSV and Parquet warehouse exports through pyarrow (streaming CSV reader, Parquet iter_batches).

CSV: every known column is read as text; a row with the wrong number of fields is quarantined as
``malformed_row`` (pyarrow's invalid-row handler) and ``source_row`` is the 1-based data row (header
not counted; a quoted value spanning lines counts as one row). Parquet: ``source_row`` is the
1-based row; ``properties`` may be JSON text, a struct (null fields left out) or a map.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import shutil
import tempfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from ..contracts import Reason
from ..errors import ExportError
from ._chunk import ID_COLUMNS, RawColumns
from ._props import Props, from_texts, from_values
from ._source import ALIASES, KNOWN_COLUMNS
from ._time import epoch_ms_arrow
from ._values import clip

__all__ = ["iter_csv_raw", "iter_parquet_raw"]

_BLOCK = 4 << 20


def _first_present(table: pa.Table, names: tuple[str, ...]) -> pa.ChunkedArray | None:
    """The first alias column, nulls filled from the next aliases."""
    cols = [table.column(n) for n in names if n in table.column_names]
    if not cols:
        return None
    out = cols[0] if pa.types.is_string(cols[0].type) else pc.cast(cols[0], pa.string())
    for other in cols[1:]:
        out = pc.coalesce(out, other if pa.types.is_string(other.type) else pc.cast(other, pa.string()))
    return out


def _properties(col: pa.ChunkedArray | None, n: int, revenue_keys: Sequence[str]) -> Props:
    if col is None:
        return from_values([None] * n, revenue_keys)
    t = col.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):  # JSON text
        return from_texts(pc.fill_null(col.combine_chunks().cast(pa.string()), "{}"), revenue_keys)
    if pa.types.is_struct(t):
        values = [None if d is None else {k: v for k, v in d.items() if v is not None} for d in col.to_pylist()]
    elif pa.types.is_map(t):
        values = [None if kv is None else dict(kv) for kv in col.to_pylist()]
    else:
        values = col.to_pylist()  # refused as "not a JSON object" unless null
    return from_values(values, revenue_keys)


def _columns(table: pa.Table, first_row: int, skipped: list[int], rejected: list,
             revenue_keys: Sequence[str]) -> RawColumns:
    n = table.num_rows
    ids = {}
    for c in ID_COLUMNS:
        col = _first_present(table, ALIASES[c])
        ids[c] = pa.nulls(n, pa.string()) if col is None else col
    ts_col = next((table.column(name) for name in ALIASES["timestamp"] if name in table.column_names), None)
    if ts_col is None:
        ms, ok = np.zeros(n, dtype="int64"), np.zeros(n, dtype=bool)
    else:
        ms, ok = epoch_ms_arrow(ts_col)
    rows = np.arange(n, dtype="int64") + first_row
    for x in skipped:  # data rows refused by the CSV parser sit between the rows read
        rows[rows >= x] += 1
    prop_col = table.column("properties") if "properties" in table.column_names else None
    return RawColumns(
        ids=ids, ts_ms=ms, ts_ok=ok,
        ts_raw=lambda idx: ([None] * len(idx) if ts_col is None
                            else ts_col.take(pa.array(idx, type=pa.int64())).to_pylist()),
        props=_properties(prop_col, n, revenue_keys), source_row=rows, rejected=rejected,
    )


def _rechunk(batches: Iterator[pa.RecordBatch], chunk_rows: int) -> Iterator[pa.Table]:
    pending: list[pa.RecordBatch] = []
    size = 0
    for b in batches:
        pending.append(b)
        size += b.num_rows
        while size >= chunk_rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, chunk_rows)
            rest = table.slice(chunk_rows)
            pending, size = rest.to_batches(), rest.num_rows
    if size:
        yield pa.Table.from_batches(pending)


# ------------------------------------------------------------------------------------------ CSV


def _csv_header(path: Path, gz: bool) -> list[str]:
    opener = gzip.open(path, "rt", encoding="utf-8-sig", newline="") if gz else \
        open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115
    with opener as fh:
        try:
            return next(csv.reader(fh), [])
        except (csv.Error, UnicodeDecodeError, EOFError, OSError) as exc:
            raise ExportError(f"{path}: cannot read the CSV header ({exc})") from None


def iter_csv_raw(path: Path, gz: bool, chunk_rows: int, revenue_keys: Sequence[str]) -> Iterator[RawColumns]:
    header = [h.strip() for h in _csv_header(path, gz)]
    wanted = [h for h in header if h in KNOWN_COLUMNS]
    if not wanted:
        raise ExportError(f"{path}: no known column in the CSV header ({', '.join(header[:8]) or 'empty'}); "
                          f"expected warehouse columns such as event_id, type, event, anonymous_id, timestamp")
    invalid: list[tuple[int | None, str | None, str]] = []
    id_at = next((header.index(a) for a in ALIASES["event_id"] if a in header), None)

    def on_invalid(row: pcsv.InvalidRow) -> str:
        data_row = None if row.number is None else row.number - 1
        invalid.append((data_row, _field(row.text, id_at),
                        f"expected {row.expected_columns} fields, found {row.actual_columns}: {row.text}"))
        return "skip"

    stream = _LinesOfGzip(path) if gz else pa.OSFile(str(path))
    try:
        reader = pcsv.open_csv(
            stream,
            read_options=pcsv.ReadOptions(use_threads=False, block_size=_BLOCK),
            parse_options=pcsv.ParseOptions(invalid_row_handler=on_invalid, newlines_in_values=True),
            convert_options=pcsv.ConvertOptions(
                include_columns=wanted, column_types={c: pa.string() for c in wanted},
                strings_can_be_null=True, quoted_strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        raise ExportError(f"{path}: not a readable CSV export ({clip(str(exc))})") from None
    next_row = 1
    with contextlib.closing(stream):
        try:
            for table in _rechunk(iter(reader), chunk_rows):
                skipped = sorted(r for r, _, _ in invalid if r is not None)
                raw = _columns(table, next_row, skipped, [], revenue_keys)
                last = int(raw.source_row[-1]) if len(raw.source_row) else next_row - 1
                raw.rejected = _flush_invalid(invalid, last)
                next_row = last + 1
                yield raw
        except (pa.ArrowInvalid, OSError) as exc:
            raise ExportError(f"{path}: the CSV cannot be parsed after data row {next_row - 1} "
                              f"({clip(str(exc))}); fix or re-export the file") from None
        rejected = _flush_invalid(invalid, None)
        if isinstance(stream, _LinesOfGzip) and stream.truncated:
            rejected.append((None, None, Reason.TRUNCATED_FILE.value,
                             clip(f"the gzip stream ends early after data row {next_row - 1 + len(rejected)} "
                                  f"({stream.truncated}); the rest of the export is missing: "
                                  "re-download or re-export the file")))
        if rejected:
            yield _columns(_empty(wanted), next_row, [], rejected, revenue_keys)


class _LinesOfGzip(io.RawIOBase):
    """A gzip stream that ends cleanly at the last complete line when the file is cut short
    (``truncated`` then says why), so the rows before the cut are still read."""

    def __init__(self, path: Path) -> None:
        self._gz = gzip.open(path, "rb")  # noqa: SIM115 (closed in close())
        self._ready = bytearray()
        self._held = b""
        self._done = False
        self.truncated: str | None = None

    def readable(self) -> bool:
        return True

    def _fill(self) -> None:
        try:
            block = self._gz.read(1 << 20)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            self.truncated = str(exc) or type(exc).__name__
            self._ready += self._held[: self._held.rfind(b"\n") + 1]  # the partial last line is dropped
            self._done = True
            return
        if not block:
            self._ready += self._held
            self._done = True
            return
        data = self._held + block
        cut = data.rfind(b"\n") + 1
        self._ready += data[:cut]
        self._held = data[cut:]

    def readinto(self, buf) -> int:  # type: ignore[override]
        while not self._ready and not self._done:
            self._fill()
        n = min(len(buf), len(self._ready))
        buf[:n] = self._ready[:n]
        del self._ready[:n]
        return n

    def close(self) -> None:
        self._gz.close()
        super().close()


def _empty(columns: list[str]) -> pa.Table:
    return pa.table({c: pa.array([], pa.string()) for c in columns})


def _field(text: str, index: int | None) -> str | None:
    if index is None:
        return None
    try:
        fields = next(csv.reader([text]), [])
    except csv.Error:
        return None
    return (fields[index] or None) if index < len(fields) else None


def _flush_invalid(invalid: list[tuple[int | None, str | None, str]], upto: int | None) -> list:
    """Take the refused rows up to data row ``upto`` (all when None) as quarantine rows."""
    taken = [r for r in invalid if upto is None or r[0] is None or r[0] <= upto]
    for r in taken:
        invalid.remove(r)
    return [(row, eid, Reason.MALFORMED_ROW.value, clip(f"data row {row}: {text}")) for row, eid, text in taken]


# -------------------------------------------------------------------------------------- Parquet


def iter_parquet_raw(path: Path, gz: bool, chunk_rows: int,
                     revenue_keys: Sequence[str]) -> Iterator[RawColumns]:
    with contextlib.ExitStack() as stack:
        source: object = str(path)
        if gz:  # unusual, but cheap to support: decompress to a temporary file, memory stays flat
            tmp = stack.enter_context(tempfile.TemporaryFile())
            with gzip.open(path, "rb") as src:
                try:
                    shutil.copyfileobj(src, tmp, 1 << 20)
                except (EOFError, OSError) as exc:
                    raise ExportError(f"{path}: truncated or corrupt gzip ({exc}); re-download the file") from None
            tmp.seek(0)
            source = tmp
        try:
            pf = stack.enter_context(contextlib.closing(pq.ParquetFile(source)))
        except (pa.ArrowInvalid, OSError) as exc:
            raise ExportError(f"{path}: not a readable Parquet file ({clip(str(exc))})") from None
        names = pf.schema_arrow.names
        if not names:
            raise ExportError(f"{path}: the Parquet file has an empty schema (no columns); re-export it")
        wanted = [n for n in names if n in KNOWN_COLUMNS]
        if not wanted:
            raise ExportError(f"{path}: no known column in the Parquet schema ({', '.join(names[:8])}); "
                              "expected warehouse columns such as event_id, type, event, anonymous_id, timestamp")
        next_row = 1
        try:
            for batch in pf.iter_batches(batch_size=chunk_rows, columns=wanted):
                table = pa.Table.from_batches([batch])
                yield _columns(table, next_row, [], [], revenue_keys)
                next_row += table.num_rows
        except (pa.ArrowInvalid, OSError) as exc:
            raise ExportError(f"{path}: Parquet data unreadable after row {next_row - 1} ({clip(str(exc))})") from None
