"""``load_results``: one entry point for every results source, with format detection."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import orjson
import pandas as pd

from ..errors import ResultsError
from ._api import fetch_api_results, http_get, parse_api_results
from ._csv import experiment_id_from_name, parse_csv_results
from ._e3 import e3_to_results, is_e3_root, load_e3
from ._schema import KEYS, conform_results, empty_results

__all__ = ["load_results", "detect_results_format", "ResultsFormat"]

log = logging.getLogger(__name__)

ResultsFormat = Literal["api", "csv", "e3"]
_FORMATS = ("api", "csv", "e3")


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def detect_results_format(source: str | os.PathLike[str]) -> ResultsFormat:
    """api for .json files and Results API URLs, csv for .csv files and export URLs, e3 for folders."""
    src = os.fspath(source)
    if _is_url(src):
        return "csv" if src.rstrip("/").split("?")[0].endswith("/csv") else "api"
    p = Path(src)
    if p.is_dir():
        return "e3"
    suffix = p.suffix.lower()
    if suffix == ".json":
        return "api"
    if suffix == ".csv":
        return "csv"
    if not p.exists():
        raise ResultsError(f"results {p}: file not found; pass a Results API .json, a CSV export or an E3 folder")
    head = p.read_bytes()[:64].lstrip()
    if head.startswith((b"{", b"[")):
        return "api"
    raise ResultsError(f"results {p}: cannot tell the format from the name; pass --results-format api|csv|e3")


def _read_text(p: Path) -> str:
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(f"results {p}: file not found; check the path") from None
    except UnicodeDecodeError:
        raise ResultsError(f"results {p}: not UTF-8 text; is this a results file?") from None
    except OSError as exc:
        raise ResultsError(f"results {p}: cannot read it ({exc.strerror})") from None


def _load_one(src: str, fmt: ResultsFormat, **http: Any) -> pd.DataFrame:
    http = dict(http)
    if fmt == "e3":
        if _is_url(src):
            raise ResultsError(f"results {src}: E3 is read from a local folder; download the export first")
        return e3_to_results(load_e3(src), http.get("datafile"))
    if _is_url(src):
        if fmt == "csv":
            http.pop("datafile", None)
            text = _fetch_csv(src, **http)
            if text is None:
                return empty_results()
            return parse_csv_results(text, experiment_id=experiment_id_from_name(src), source=f"results {src}")
        http.pop("datafile", None)
        return fetch_api_results(src, **http)
    p = Path(src)
    text = _read_text(p)
    if fmt == "csv":
        return parse_csv_results(text, experiment_id=experiment_id_from_name(p.name), source=f"results {p}")
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ResultsError(f"results {p}: not JSON ({exc}); save the Results API response body as is") from None
    return parse_api_results(data, source=f"results {p}")


def _fetch_csv(url: str, **http: Any) -> str | None:
    resp = http_get(url, **http)
    return None if resp is None else resp.text


def _expand(sources: Iterable[str], experiment_ids: Sequence[str] | None) -> list[str]:
    out: list[str] = []
    for s in sources:
        if "{experiment_id}" in s:
            if not experiment_ids:
                raise ResultsError(f"results {s}: the URL has {{experiment_id}} but no experiment ids were given")
            out.extend(s.replace("{experiment_id}", str(e)) for e in experiment_ids)
        else:
            out.append(s)
    return out


def load_results(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    fmt: ResultsFormat | None = None,
    token_env: str = "OPTIMIZELY_API_TOKEN",
    start_time: Any = None,
    end_time: Any = None,
    experiment_ids: Sequence[str] | None = None,
    datafile=None,
) -> pd.DataFrame:
    """Load results into the normalized RESULTS frame (see ``toolkit.results.RESULTS``).

    ``source``: a Results API JSON file or URL, a CSV export file or URL, an E3 folder, a folder of
    ``.json`` / ``.csv`` results files, or a list of any of these. A URL may contain
    ``{experiment_id}``, expanded for each of ``experiment_ids``. The API token is read from the
    environment variable named ``token_env``; ``start_time`` / ``end_time`` go to the API as is.
    ``datafile`` (optional) limits E3 aggregates to each experiment's metrics (see ``e3_to_results``).
    """
    if fmt is not None and fmt not in _FORMATS:
        raise ResultsError(f"results format {fmt!r}: use one of {', '.join(_FORMATS)}")
    items = [os.fspath(source)] if isinstance(source, str | os.PathLike) else [os.fspath(s) for s in source]
    frames: list[pd.DataFrame] = []
    http = {"token_env": token_env, "start_time": start_time, "end_time": end_time, "datafile": datafile}
    for src in _expand(items, experiment_ids):
        p = Path(src)
        if not _is_url(src) and p.is_dir() and not is_e3_root(p) and fmt != "e3":
            files = sorted(f for f in p.iterdir() if f.suffix.lower() in (".json", ".csv"))
            if not files:
                raise ResultsError(f"results {p}: a folder with no .json / .csv results and no E3 layout")
            frames += [_load_one(str(f), fmt or detect_results_format(f), **http) for f in files]
            continue
        frames.append(_load_one(src, fmt or detect_results_format(src), **http))
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty_results()
    out = conform_results(pd.concat(frames, ignore_index=True))
    dup = out.duplicated(KEYS, keep=False)
    if dup.any():
        first = out[dup].iloc[0]
        raise ResultsError(
            f"results: experiment {first['experiment_id']} variation {first['variation_id']} metric "
            f"{first['event_key']} appears in more than one source; pass each experiment's results once"
        )
    return out
