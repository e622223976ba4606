"""Load Datafly exports (JSON Lines, CSV, Parquet; gzip too) into NORMALIZED frames, in chunks.

    from toolkit.exports import iter_export, load_export
    for chunk in iter_export("export.jsonl.gz", chunk_rows=200_000):
        chunk.events       # NORMALIZED (toolkit.contracts): one row per source event
        chunk.quarantine   # QUARANTINE: malformed_row, unparseable_timestamp, truncated_file
        chunk.rows_in      # == len(events) + len(quarantine)

``iter_export_parts`` cuts the same chunks without loading them (JSON Lines: the lines as bytes),
for a process pool to load them in its workers: ``part.load()`` is the chunk.

Money properties are kept as text (see ``_values``): never converted to floats here.
"""

from ._api import (
    DEFAULT_CHUNK_ROWS,
    DEFAULT_REVENUE_KEYS,
    ExportPart,
    iter_export,
    iter_export_parts,
    load_export,
)
from ._chunk import ExportChunk
from ._source import FORMATS, detect_format
from ._values import money_text

__all__ = [
    "iter_export",
    "iter_export_parts",
    "ExportPart",
    "load_export",
    "detect_format",
    "ExportChunk",
    "money_text",
    "FORMATS",
    "DEFAULT_REVENUE_KEYS",
    "DEFAULT_CHUNK_ROWS",
]
