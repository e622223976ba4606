"""A local Optimizely stand-in for demos, onboarding and tests: the Event API (response codes,
strict mode, 3.5 MB limit, dedup), the datafile CDN (ETag / Last-Modified, 403), attribution by
Optimizely's rules, the Results API JSON, the CSV export and E3 Parquet, on loopback only.

    from toolkit.sandbox import Sandbox
    with Sandbox("reports/sandbox", datafile="tests/fixtures/datafile.json") as sb:
        ...  # sb.events_url, sb.datafile_url, sb.results_url(experiment_id), sb.stats()
"""

from .app import MAX_BODY_BYTES, SandboxState, create_app
from .attribution import Attribution, Tally, attribute
from .e3 import export_e3
from .faults import FaultSpec, parse_faults
from .ingest import BodyError, Catalog, DropReason, check_body, decode_body
from .results import CSV_COLUMNS, results_csv, results_json
from .server import DEFAULT_SDK_KEY, Sandbox, SandboxError
from .store import Store

__all__ = [
    "Sandbox",
    "SandboxError",
    "DEFAULT_SDK_KEY",
    "MAX_BODY_BYTES",
    "FaultSpec",
    "parse_faults",
    "DropReason",
    "BodyError",
    "Catalog",
    "decode_body",
    "check_body",
    "Store",
    "SandboxState",
    "create_app",
    "Attribution",
    "Tally",
    "attribute",
    "results_json",
    "results_csv",
    "CSV_COLUMNS",
    "export_e3",
]
