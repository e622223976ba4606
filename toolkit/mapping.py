"""Mapping: normalized export rows -> Optimizely events (the EVENTS contract), plus quarantine.

The implementation lives in small modules, re-exported here:

- :mod:`toolkit.map_chunk`: :func:`map_events`, one chunk of NORMALIZED rows -> :class:`MapResult`
  (the checks, reasons and skip rules are documented there);
- :mod:`toolkit.map_export`: :func:`map_export`, a whole export file chunk by chunk, with the
  JSON Lines outputs and the :class:`MapSummary`;
- :mod:`toolkit.tags` (:func:`build_tags`), :mod:`toolkit.activations` (impressions),
  :mod:`toolkit.money` (minor units), :mod:`toolkit.identity` (visitor ids, stable uuids).
"""

from __future__ import annotations

from .identity import stable_uuid
from .map_chunk import MapResult, map_events
from .map_export import DECISIONS, MapOutput, MapSummary, map_export, write_quarantine_jsonl
from .tags import build_tags

__all__ = [
    "MapResult",
    "MapSummary",
    "MapOutput",
    "map_events",
    "map_export",
    "build_tags",
    "stable_uuid",
    "write_quarantine_jsonl",
    "DECISIONS",
]
