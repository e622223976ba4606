"""A synthetic, deterministic Datafly export with known defects, plus its datafile and config.

``generate_sample(out_dir, events=2000, seed=7)`` writes ``export.jsonl`` / ``export.csv`` /
``export.parquet`` (the same events; the JSONL also holds one line cut in the middle),
``datafile.json`` (v4, accepted by optimizely-sdk), ``config.json`` (Datafly install JSON) and
``manifest.json`` (seed, counts of every event kind and of every defect, each defined under
``notes``). Same seed and size -> byte-identical files (Parquet: for the same pyarrow version).
Timestamps fall in a fixed window (2026-11-02 .. 2026-11-08 UTC), never relative to now.
Experiment Viewed events carry the variation the official optimizely-sdk bucketer assigns to the
visitor id of that event (userId when known, else anonymousId).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import UserInputError
from ._datafile import ACCOUNT_ID, PROJECT_ID, REVISION, SDK_KEY, build_datafile, install_config
from ._generate import NOTES, WINDOW_END, WINDOW_START, build_events
from ._write import count_events, write_csv, write_jsonl, write_parquet

__all__ = ["generate_sample", "SAMPLE_FILES", "MIN_EVENTS", "ACCOUNT_ID", "PROJECT_ID", "SDK_KEY"]

MIN_EVENTS = 200
SAMPLE_FILES = ("export.jsonl", "export.csv", "export.parquet", "datafile.json", "config.json", "manifest.json")


def _json_file(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def generate_sample(out_dir: str | os.PathLike[str], *, events: int = 2000, seed: int = 7) -> dict[str, Any]:
    """Write the sample files into ``out_dir`` (created if needed) and return the manifest."""
    if isinstance(events, bool) or not isinstance(events, int) or events < MIN_EVENTS:
        raise UserInputError(f"events: {events!r} is too few; the sample needs at least {MIN_EVENTS} events "
                             "to hold every defect")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UserInputError(f"seed: {seed!r} is not an integer")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserInputError(f"{out}: cannot create the output folder ({exc.strerror})") from None
    datafile = build_datafile()
    datafile_text = json.dumps(datafile, indent=2) + "\n"
    evs = build_events(events, seed, datafile_text)
    formats = {
        "jsonl": write_jsonl(evs, out / "export.jsonl"),
        "csv": write_csv(evs, out / "export.csv"),
        "parquet": write_parquet(evs, out / "export.parquet"),
    }
    (out / "datafile.json").write_text(datafile_text, encoding="utf-8")
    _json_file(out / "config.json", install_config())
    kinds, defects = count_events(evs)
    defects["unparseable_timestamp"] = {f: defects_unparseable(evs) for f in formats}
    defects["malformed_json_line"] = {f: v["malformed_json_line"] for f, v in formats.items()}
    manifest = {
        "generator": "toolkit sample",
        "seed": seed,
        "events": events,
        "window": {"start": WINDOW_START.isoformat(), "end_exclusive": WINDOW_END.isoformat()},
        "files": {f"export.{f}": {"rows": v["rows"]} for f, v in formats.items()},
        "datafile": {"account_id": ACCOUNT_ID, "project_id": PROJECT_ID, "revision": REVISION, "sdk_key": SDK_KEY},
        "kinds": kinds,
        "defects": defects,
        "notes": NOTES,
    }
    _json_file(out / "manifest.json", manifest)
    return manifest


def defects_unparseable(evs: list[dict]) -> int:
    return sum(1 for e in evs if "unparseable_timestamp" in e["_tags"])
