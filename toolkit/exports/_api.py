"""The public entry points: iter_export (chunked) and load_export (whole file)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence

import pandas as pd

from ..contracts import NORMALIZED, QUARANTINE, empty
from ..errors import ExportError
from ..payload import gc_paused
from ._arrow import iter_csv_raw, iter_parquet_raw
from ._chunk import ExportChunk, finish
from ._jsonl import iter_jsonl_raw
from ._source import resolve

__all__ = ["iter_export", "load_export", "DEFAULT_REVENUE_KEYS", "DEFAULT_CHUNK_ROWS"]

log = logging.getLogger(__name__)

DEFAULT_REVENUE_KEYS: tuple[str, ...] = ("revenue", "total", "value")
DEFAULT_CHUNK_ROWS = 200_000
_READERS = {"jsonl": iter_jsonl_raw, "csv": iter_csv_raw, "parquet": iter_parquet_raw}


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
    if isinstance(revenue_keys, str) or not revenue_keys:
        raise ExportError(f"revenue_keys must be a non-empty list of property names, got {revenue_keys!r}")
    if not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ExportError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    p, resolved, gz = resolve(path, fmt)
    log.debug("reading %s as %s%s in chunks of %d rows", p, resolved, " (gzip)" if gz else "", chunk_rows)
    keys = tuple(revenue_keys)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(desc=f"load {p.name}", unit=" rows", unit_scale=True)
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
