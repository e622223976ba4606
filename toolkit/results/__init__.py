"""Results loaders: what Optimizely counted, as one normalized frame (``RESULTS``).

Sources: the Results API (saved JSON or fetched with a token from an environment variable), the
Results CSV export, and the Enriched Events Export (E3 Parquet, per-event truth). The sandbox
serves the same shapes, so the same loaders read it.
"""

from __future__ import annotations

from ._api import fetch_api_results, parse_api_results
from ._csv import parse_csv_results
from ._e3 import E3_ATTRIBUTIONS, E3_DECISIONS, E3_EVENTS, E3Frames, e3_to_results, is_e3_root, load_e3
from ._load import ResultsFormat, detect_results_format, load_results
from ._schema import RESULTS, empty_results

__all__ = [
    "RESULTS",
    "E3_DECISIONS",
    "E3_EVENTS",
    "E3_ATTRIBUTIONS",
    "E3Frames",
    "ResultsFormat",
    "load_results",
    "load_e3",
    "e3_to_results",
    "is_e3_root",
    "detect_results_format",
    "parse_api_results",
    "parse_csv_results",
    "fetch_api_results",
    "empty_results",
]
