"""Results API JSON (``GET /v2/experiments/{id}/results``): parse a saved response, or fetch one.

Mapping (facts section 7): visitors = ``reach.variations[vid].count``; per metric event,
``aggregator == "unique"`` -> unique_conversions, ``"count"`` -> total_conversions, ``"sum"`` over
``field == "revenue"`` -> revenue (minor units). Sums over ``value`` have no column and are skipped.

The personal access token is read from an environment variable whose *name* the caller gives;
it is sent as a bearer header and never appears in messages.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pandas as pd
import requests

from ..errors import ResultsError
from ..secrets import Secret, mask_url
from ._schema import conform_results, empty_results, to_int

__all__ = ["parse_api_results", "fetch_api_results", "http_get", "resolve_token"]

log = logging.getLogger(__name__)

_FIELD_OF = {"unique": "unique_conversions", "count": "total_conversions"}


def parse_api_results(data: Any, source: str = "results") -> pd.DataFrame:
    """One Results API response (or a list of them, one per experiment) -> the RESULTS frame."""
    responses = data if isinstance(data, list) else [data]
    rows: list[dict[str, Any]] = []
    for i, resp in enumerate(responses):
        where = source if len(responses) == 1 else f"{source} [item {i}]"
        rows.extend(_rows_of(resp, where))
    return conform_results(rows) if rows else empty_results()


def _rows_of(resp: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(resp, Mapping) or not ({"reach", "metrics"} & resp.keys()):
        raise ResultsError(
            f"{where}: not a Results API response (expected an object with experiment_id, reach and metrics); "
            "save the body of GET /v2/experiments/{id}/results"
        )
    exp_id = resp.get("experiment_id")
    if exp_id in (None, ""):
        raise ResultsError(f"{where}: the response has no experiment_id; save the whole Results API body")
    reach = resp.get("reach") or {}
    variations = reach.get("variations") or {} if isinstance(reach, Mapping) else {}
    if not isinstance(variations, Mapping):
        raise ResultsError(f"{where}: reach.variations must be an object keyed by variation id")
    base = {"experiment_id": str(exp_id), "start_time": resp.get("start_time"), "end_time": resp.get("end_time")}
    per_var: dict[str, dict[str, Any]] = {}
    for vid, v in variations.items():
        v = v if isinstance(v, Mapping) else {}
        vid = str(v.get("variation_id") or vid)
        per_var[vid] = {"variation_name": v.get("name"), "visitors": to_int(v.get("count"))}

    metrics = resp.get("metrics") or []
    if not isinstance(metrics, list):
        raise ResultsError(f"{where}: metrics must be a list")
    cells: dict[tuple[str, str, str | None], dict[str, Any]] = {}
    for m in metrics:
        if not isinstance(m, Mapping):
            raise ResultsError(f"{where}: each metric must be an object")
        agg, field = str(m.get("aggregator") or "").lower(), str(m.get("field") or "").lower()
        column = _FIELD_OF.get(agg) or ("revenue" if agg == "sum" and field == "revenue" else None)
        if column is None:
            log.debug("%s: metric %s (%s over %s) has no column; skipped", where, m.get("name"), agg, field)
            continue
        event_id = None if m.get("event_id") in (None, "") else str(m.get("event_id"))
        for vid, r in (m.get("results") or {}).items():
            r = r if isinstance(r, Mapping) else {}
            vid = str(r.get("variation_id") or vid)
            cell = cells.setdefault((vid, str(m.get("name") or event_id), event_id), {})
            cell[column] = to_int(r.get("value"))
            per_var.setdefault(vid, {"variation_name": r.get("name"), "visitors": None})
    rows = [
        {**base, "variation_id": vid, **per_var[vid], "event_key": name, "event_id": eid, **vals}
        for (vid, name, eid), vals in cells.items()
    ]
    with_metrics = {vid for (vid, _, _) in cells}
    rows += [{**base, "variation_id": vid, **pv} for vid, pv in per_var.items() if vid not in with_metrics]
    return rows


def resolve_token(token_env: str) -> Secret | None:
    value = os.environ.get(token_env)
    return Secret(value, source=f"env {token_env}") if value else None


def _iso(t: Any) -> str | None:
    if t is None:
        return None
    if isinstance(t, datetime):
        return t.isoformat().replace("+00:00", "Z")
    return str(t)


def http_get(
    url: str,
    *,
    token_env: str = "OPTIMIZELY_API_TOKEN",
    start_time: Any = None,
    end_time: Any = None,
    timeout: float = 30.0,
    session: requests.Session | None = None,
) -> requests.Response | None:
    """GET a results URL with the bearer token. None on 204 (no results yet, with a warning);
    401/403/404/other failures -> ResultsError with one line (no token in it)."""
    token = resolve_token(token_env)
    safe = mask_url(url, [token] if token else [])
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token.reveal()}"
    params = {k: v for k, v in (("start_time", _iso(start_time)), ("end_time", _iso(end_time))) if v}
    http = session or requests.Session()
    try:
        resp = http.get(url, headers=headers, params=params, timeout=timeout)
    except requests.RequestException as exc:
        raise ResultsError(f"results {safe}: request failed ({type(exc).__name__}); check the URL and network") from None
    finally:
        if session is None:
            http.close()
    status = resp.status_code
    if status == 204:
        log.warning("results %s: 204 no results yet (results may take up to 10 minutes after events arrive); "
                    "treating as empty", safe)
        return None
    if status in (401, 403):
        how = (f"the token in ${token_env} was refused" if token is not None
               else f"no token: set ${token_env} to an Optimizely personal access token")
        raise ResultsError(f"results {safe}: {status} {'Unauthorized' if status == 401 else 'Forbidden'}: {how} "
                           "(Profile > API Access; it needs access to this project)")
    if status == 404:
        raise ResultsError(f"results {safe}: 404 Not Found: check the experiment id in the URL")
    if status != 200:
        raise ResultsError(f"results {safe}: HTTP {status}; try again later or save the results to a file")
    return resp


def fetch_api_results(url: str, **http: Any) -> pd.DataFrame:
    """GET one Results API URL (see :func:`http_get` for the options and failures)."""
    resp = http_get(url, **http)
    if resp is None:
        return empty_results()
    try:
        data = resp.json()
    except (ValueError, json.JSONDecodeError):
        raise ResultsError(f"results {mask_url(url)}: the 200 response is not JSON; is this the Results API URL?") from None
    return parse_api_results(data, source=f"results {mask_url(url)}")
