"""The public entry points: iter_export (chunked) and load_export (whole file)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..contracts import NORMALIZED, QUARANTINE, empty
from ..errors import ExportError
from ..payload import gc_paused
from ._arrow import iter_csv_raw, iter_parquet_raw
from ._chunk import ExportChunk, finish
from ._jsonl import JsonlPart, iter_jsonl_parts, iter_jsonl_raw
from ._source import resolve
from ._span import JsonlSpan, iter_jsonl_spans

__all__ = ["iter_export", "iter_export_parts", "load_export", "ExportPart", "DEFAULT_REVENUE_KEYS",
           "DEFAULT_CHUNK_ROWS"]

log = logging.getLogger(__name__)

DEFAULT_REVENUE_KEYS: tuple[str, ...] = ("revenue", "total", "value")
DEFAULT_CHUNK_ROWS = 200_000
_READERS = {"jsonl": iter_jsonl_raw, "csv": iter_csv_raw, "parquet": iter_parquet_raw}


def _prepare(path: str | os.PathLike[str], fmt: str | None, chunk_rows: int,
             revenue_keys: Sequence[str]) -> tuple[Path, str, bool, tuple[str, ...]]:
    if isinstance(revenue_keys, str) or not revenue_keys:
        raise ExportError(f"revenue_keys must be a non-empty list of property names, got {revenue_keys!r}")
    if not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ExportError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    p, resolved, gz = resolve(path, fmt)
    log.debug("reading %s as %s%s in chunks of %d rows", p, resolved, " (gzip)" if gz else "", chunk_rows)
    return p, resolved, gz, tuple(revenue_keys)


def iter_export(
    path: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    revenue_keys: Sequence[str] = DEFAULT_REVENUE_KEYS,
    progress: bool = False,
) -> Iterator[ExportChunk]:
    """Read a Datafly export chunk by chunk (at most ``chunk_rows`` source rows each).

    ``fmt`` forces ``"jsonl"``, ``"csv"`` or ``"parquet"`` (default: detected). Gzip is detected
    from the magic bytes. Row problems are quarantined; a file that cannot be read at all raises
    :class:`~toolkit.errors.ExportError` (before the first chunk when that can be known).
    """
    p, resolved, gz, keys = _prepare(path, fmt, chunk_rows, revenue_keys)
    bar = None
    if progress:
        from ..progress import Bar

        bar = Bar(desc=f"load {p.name}", unit=" rows", unit_scale=True)
    reader = _READERS[resolved](p, gz, chunk_rows, keys)
    try:
        while True:
            with gc_paused():  # a chunk builds ~a million small objects and none is a cycle
                raw = next(reader, None)
                chunk = None if raw is None else finish(raw)
            if chunk is None:
                break
            if bar is not None:
                bar.update(chunk.rows_in)
            yield chunk
    finally:
        reader.close()
        if bar is not None:
            bar.close()


@dataclass(frozen=True)
class ExportPart:
    """One chunk of an export, for loading elsewhere (a worker process): picklable, and for JSON
    Lines not parsed yet (its lines as bytes), so cutting parts costs the reader little.
    ``load()`` gives the chunk :func:`iter_export` gives for the same rows."""

    rows_in: int
    jsonl: JsonlPart | JsonlSpan | None = None  # JSON Lines: the lines, or where they are in the file
    chunk: ExportChunk | None = None  # CSV, Parquet: the chunk, loaded where the parts were cut

    def file_rows_estimate(self) -> int | None:
        """For a byte range of an uncompressed JSON Lines file: the rows of the whole file if all
        its lines were like this part's (its size / this part's bytes per row); else None."""
        span = self.jsonl
        if not isinstance(span, JsonlSpan) or not span.length:
            return None
        return int(self.rows_in * os.path.getsize(span.path) / span.length)

    def load(self) -> ExportChunk:
        if self.chunk is not None:
            return self.chunk
        assert self.jsonl is not None
        with gc_paused():
            return finish(self.jsonl.raw())


def iter_export_parts(
    path: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    revenue_keys: Sequence[str] = DEFAULT_REVENUE_KEYS,
) -> Iterator[ExportPart]:
    """The chunks of :func:`iter_export` (same arguments, same boundaries) as parts to load later.

    JSON Lines parts carry their lines unparsed (an uncompressed file: only their byte range, see
    :mod:`._span`): a process pool can then read and parse them in its workers, the reader only
    finds where chunks end. CSV and Parquet parts are loaded here (their readers are columnar
    already)."""
    p, resolved, gz, keys = _prepare(path, fmt, chunk_rows, revenue_keys)
    if resolved != "jsonl":
        for chunk in iter_export(p, fmt=resolved, chunk_rows=chunk_rows, revenue_keys=keys):
            yield ExportPart(rows_in=chunk.rows_in, chunk=chunk)
        return
    parts = iter_jsonl_parts(p, gz, chunk_rows, keys) if gz else iter_jsonl_spans(p, chunk_rows, keys)
    for part in parts:
        yield ExportPart(rows_in=part.rows_in, jsonl=part)


def load_export(path: str | os.PathLike[str], **kw) -> ExportChunk:
    """The whole export as one chunk (same arguments as :func:`iter_export`)."""
    chunks = list(iter_export(path, **kw))
    if not chunks:
        return ExportChunk(events=empty(NORMALIZED), quarantine=empty(QUARANTINE), rows_in=0)
    if len(chunks) == 1:
        return chunks[0]
    events = pd.concat([c.events for c in chunks], ignore_index=True)
    quarantine = pd.concat([c.quarantine for c in chunks], ignore_index=True)
    return ExportChunk(events=events, quarantine=quarantine, rows_in=sum(c.rows_in for c in chunks))
