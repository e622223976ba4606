"""Where the bytes come from: format detection (name, then content), gzip, and column aliases."""

from __future__ import annotations

import csv
import io
import logging
import os
import zlib
from pathlib import Path
from typing import Literal

from ..errors import ExportError

__all__ = ["Format", "FORMATS", "ALIASES", "detect_format", "resolve", "is_gzip", "sniff"]

log = logging.getLogger(__name__)

Format = Literal["jsonl", "csv", "parquet"]
FORMATS: tuple[Format, ...] = ("jsonl", "csv", "parquet")
GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"
_HEAD = 64 * 1024
_SUFFIXES: dict[str, Format] = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet", ".pq": "parquet",
}
_GZ_SUFFIXES = (".gz", ".gzip")

# Normalized column -> the names it may have in an export, first found wins (camelCase is the
# canonical JSON event, snake_case the warehouse export; "name" is the page name of page events).
ALIASES: dict[str, tuple[str, ...]] = {
    "event_id": ("event_id", "messageId", "message_id"),
    "type": ("type",),
    "event": ("event", "name"),
    "user_id": ("user_id", "userId"),
    "anonymous_id": ("anonymous_id", "anonymousId"),
    "timestamp": ("timestamp",),
    "properties": ("properties",),
}
KNOWN_COLUMNS = frozenset(n for names in ALIASES.values() for n in names)
_HINT = "name it .jsonl, .csv or .parquet (optionally .gz) or pass fmt= / --format"


def _read_head(path: Path) -> bytes:
    """The first bytes of the content (decompressed when gzip)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(_HEAD)
    except FileNotFoundError:
        raise ExportError(f"{path}: file not found; pass the path of a Datafly export (JSONL, CSV or Parquet)") from None
    except IsADirectoryError:
        raise ExportError(f"{path}: is a folder; pass the path of one export file") from None
    except OSError as exc:
        raise ExportError(f"{path}: cannot read it ({exc.strerror})") from None
    if raw[:2] != GZIP_MAGIC:
        return raw
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(raw, _HEAD)
    except zlib.error as exc:
        raise ExportError(f"{path}: corrupt gzip data ({exc}); re-download or re-export the file") from None
    if not out and not d.eof:
        raise ExportError(f"{path}: the gzip data is truncated before any content; re-download or re-export the file")
    return out


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def sniff(head: bytes) -> Format | None:
    """The format the content shows beyond doubt, else None."""
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"{"):
        return "jsonl"
    first = text.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    try:
        header = next(csv.reader(io.StringIO(first)), [])
    except csv.Error:
        return None
    if len(header) > 1 and KNOWN_COLUMNS.intersection(h.strip() for h in header):
        return "csv"
    return None


def _from_name(path: Path) -> Format | None:
    name = path.name.lower()
    for gz in _GZ_SUFFIXES:
        if name.endswith(gz):
            name = name[: -len(gz)]
    return _SUFFIXES.get(Path(name).suffix)


def resolve(path: str | os.PathLike[str], fmt: str | None = None) -> tuple[Path, Format, bool]:
    """(path, format, gzip) for reading; ExportError when the file or the format is unusable."""
    p = Path(path)
    head = _read_head(p)
    seen = sniff(head)
    gz = is_gzip(p)
    if fmt is not None:
        if fmt not in FORMATS:
            raise ExportError(f"{p}: unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
        if seen is not None and seen != fmt:
            raise ExportError(f"{p}: read as {fmt} (forced) but its content is {seen}; "
                              f"pass fmt={seen!r} or leave the format to detection")
        return p, fmt, gz  # type: ignore[return-value]
    named = _from_name(p)
    if named is None and seen is None:
        raise ExportError(f"{p}: cannot tell the format from the name or the first bytes; {_HINT}")
    if named is not None and seen is not None and named != seen:
        log.warning("%s: named like %s but the content is %s; reading it as %s", p, named, seen, seen)
    return p, (seen or named), gz  # type: ignore[return-value]


def detect_format(path: str | os.PathLike[str]) -> Format:
    """``"jsonl"``, ``"csv"`` or ``"parquet"``: from the name (``.gz`` ignored), checked against the
    content (Parquet magic bytes, a JSON object, a CSV header with known columns), which wins."""
    return resolve(path)[1]
