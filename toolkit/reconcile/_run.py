"""``reconcile``: the ledger, the prediction and Optimizely's results side by side, every gap explained."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from ..contracts import EVENTS, conform
from ..datafile import Datafile
from ._diagnose import (
    event_diagnoses,
    inflation_count,
    make,
    quarantine_keys,
    run_diagnoses,
    unexplained_diagnosis,
)
from ._model import TABLE_COLUMNS, Diagnosis, Reconciliation, Tolerance
from ._pairs import ROW, arrow_strings, assign_reasons, conversion_pairs, first_impressions, isin_strings

__all__ = ["reconcile", "delivered_events", "LAG_MINUTES"]

log = logging.getLogger(__name__)
LAG_MINUTES = 10.0  # "results can take up to 10 minutes to update"
_STATUS_ORDER = {"gap": 0, "explained": 1, "ok": 2}
_METRIC_ORDER = {"total_conversions": 0, "unique_conversions": 1, "visitors": 2, "revenue": 3}


def delivered_events(ledger) -> pd.DataFrame:
    """The ledger's delivered events as an EVENTS frame (input of the predictor)."""
    ev = ledger.events
    return conform(ev[(ev["status"] == "delivered").fillna(False)], EVENTS).reset_index(drop=True)


def _delivered_at(ledger) -> pd.Series:
    """Per ledger event: epoch ms of the answer that delivered its batch (null if never delivered)."""
    req = ledger.requests
    ok = req[req["status"].between(200, 299).fillna(False)]
    if not len(ok):
        return pd.Series(pd.NA, index=ledger.events.index, dtype="Int64")
    done = ok["started_at"].astype("datetime64[ms, UTC]").astype("int64") + ok["latency_ms"].fillna(0).round().astype("int64")
    at = pd.Series(done.to_numpy(), index=ok["batch_id"].to_numpy()).groupby(level=0).max()
    return ledger.events["batch_id"].map(at).astype("Int64")


def _row_diagnoses(pairs: pd.DataFrame, first: pd.DataFrame) -> pd.DataFrame:
    conv = pairs.loc[pairs["reason"].notna(), [*ROW, "reason"]]
    vis = first.loc[first["reason"].notna(), ["experiment_id", "variation_id", "reason"]].assign(event_key=pd.NA)
    both = pd.concat([conv, vis[[*ROW, "reason"]]], ignore_index=True).astype("string")
    both = both.assign(**{c: both[c].fillna("\x00") for c in ROW})
    out = both.groupby(ROW)["reason"].agg(lambda s: ";".join(sorted(set(s)))).rename("codes").reset_index()
    for c in ROW:
        out[c] = out[c].mask(out[c] == "\x00").astype("string")
    return out


def _names(table: pd.DataFrame, datafile: Datafile) -> pd.DataFrame:
    exp = {e.id: e.key for e in datafile.experiments.values()}
    var = {v.id: v.key for e in datafile.experiments.values() for v in e.variations}
    table["experiment_key"] = table["experiment_id"].map(exp).astype("string")
    table["variation_key"] = table["variation_id"].map(var).astype("string")
    return table


def reconcile(
    ledger,
    results: pd.DataFrame,
    datafile: Datafile,
    *,
    expected=None,
    e3=None,
    tolerance: Tolerance | None = None,
    mapping: Any = None,
    quarantine: pd.DataFrame | None = None,
    as_of: datetime | None = None,
    lag_minutes: float = LAG_MINUTES,
) -> Reconciliation:
    """Reconcile a delivery ledger (``toolkit.ledger.LedgerFrames``) with Optimizely's results.

    ``results``: the RESULTS frame of :func:`toolkit.results.load_results`. ``expected``: a
    ``toolkit.attribution.Prediction``; by default ``predict()`` over the delivered events (pass one
    built from a reference mapping to check revenue units). ``e3``: :class:`toolkit.results.E3Frames`
    for event-by-event arrival. ``mapping``: the mapping summary (or a count of people with several
    anonymous ids) for the visitor-inflation diagnosis. ``quarantine``: the mapping's QUARANTINE frame
    (events with keys not in the datafile never reach the ledger; they count in the key diagnoses). ``as_of``: when the results were read
    (default now), for the processing-lag diagnosis.
    """
    from ..results import RESULTS

    tolerance = tolerance or Tolerance()

    if expected is None:
        from ..attribution import predict

        expected = predict(delivered_events(ledger), datafile)
    results = conform(results, RESULTS)
    as_of_ms = int((as_of or datetime.now(UTC)).timestamp() * 1000)
    e3_uuids = None
    if e3 is not None:
        import pyarrow.compute as pc

        both = pd.concat([e3.decisions["uuid"], e3.events["uuid"]]).dropna()
        e3_uuids = pc.unique(arrow_strings(both).combine_chunks())

    ev = ledger.events.reset_index(drop=True).copy()
    ev["_pos"] = np.arange(len(ev))
    ev["delivered_at"] = _delivered_at(ledger).reset_index(drop=True)
    first = first_impressions(ev)
    pairs = conversion_pairs(ev, first, datafile)
    common = {"datafile": datafile, "results": results, "e3_uuids": e3_uuids, "as_of_ms": as_of_ms,
              "lag_ms": int(lag_minutes * 60_000)}
    pairs["reason"] = assign_reasons(pairs, not_counted=expected.not_counted, conversions=True, **common)
    first["reason"] = assign_reasons(first, not_counted=None, conversions=False, **common)

    from ._table import build_table

    table = build_table(pairs, first, expected.counts, results, datafile, tolerance)
    short = table["metric"].isin(["total_conversions", "visitors"])
    post_budget = int(table.loc[short, "post"].sum())
    codes = _row_diagnoses(pairs, first)
    table = table.merge(codes, on=ROW, how="left") if len(codes) else table.assign(codes=pd.NA)
    table["diagnoses"] = [";".join(x for x in (a, b) if isinstance(x, str) and x)
                          for a, b in zip(table["diagnoses"], table["codes"], strict=True)]
    table = _names(table, datafile)
    table["_order"] = table["status"].map(_STATUS_ORDER)
    scale = table[["sent", "counted", "expected"]].abs().max(axis=1).clip(lower=1)
    table["_abs"] = table["unexplained"].abs() / scale
    table["_gap"] = table["gap"].abs() / scale
    table["_metric"] = table["metric"].map(_METRIC_ORDER)
    table = table.sort_values(["_order", "_abs", "_gap", "_metric", "experiment_id", "variation_id", "event_key"],
                              ascending=[True, False, False, True, True, True, True], kind="stable")
    for c in ("sent", "delivered", "expected", "counted", "gap", "explained", "unexplained", "model_gap"):
        table[c] = table[c].round().astype("int64")
    table = table[TABLE_COLUMNS + ["revenue_ratio"]].reset_index(drop=True)

    diagnoses: list[Diagnosis] = event_diagnoses(pairs, first, ledger.events, ledger.run, datafile, ledger.requests,
                                                   quarantine_keys(quarantine, datafile), post_budget)
    units = table[table["diagnoses"].str.contains("revenue_units", regex=False)]
    if len(units):
        n = int(pairs[pairs[ROW].apply(tuple, axis=1).isin(set(units[ROW].apply(tuple, axis=1)))]["uuid"].nunique())
        ratios = ", ".join(f"{r:.3g}" for r in units["revenue_ratio"].dropna().unique()[:3])
        direction = ("the results report major units" if (units["sent"] - units["expected"]).abs().sum() == 0
                     else "the events were sent with revenue in major units")
        diagnoses.append(make("revenue_units", n, "events",
                              [f"{r.experiment_id}/{r.variation_id}/{r.event_key}: counted {r.counted}, expected "
                               f"{r.expected}" for r in units.itertuples()],
                              f"counted/expected revenue ratio {ratios}: {direction}"))
    e3_revs = set(e3.decisions["revision"].dropna()) | set(e3.events["revision"].dropna()) if e3 is not None else set()
    diagnoses += run_diagnoses(ledger.run, datafile, ledger.events, e3_revs, inflation_count(mapping))
    diagnoses.append(unexplained_diagnosis(table))

    arrivals = None
    if e3_uuids is not None:
        arrivals = ev[["uuid", "kind", "key", "visitor_id", "timestamp", "status"]].copy()
        arrivals["arrived"] = isin_strings(arrivals["uuid"], e3_uuids)
    return Reconciliation(table=table, diagnoses=tuple(diagnoses), arrivals=arrivals, tolerance=tolerance,
                          run=dict(ledger.run))
