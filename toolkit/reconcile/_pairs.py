"""Event-level work: place each sent event in its reconciliation row, and name why it will not count.

A conversion belongs to (experiment, the visitor's first sent variation, event key) for each running
experiment its key is attached to in which the visitor has a sent decision; a visitor with a
decision in none of them gets one row per attached experiment with a null variation ("no
decision"), and a key attached to no running experiment gets a null experiment. A key that is not
in the datafile is placed under the key it most likely meant (``Datafile.suggest_key``).

Reasons, first that applies (codes of :data:`CAUSES`): delivery status, key, the decision's
delivery, the predictor's ``not_counted`` reason, E3 absence, results window, processing lag.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..datafile import Datafile
from ._model import CAUSES

__all__ = ["canonical_keys", "first_impressions", "conversion_pairs", "delivery_codes", "assign_reasons",
           "POST_PREDICTION", "epoch_ms", "isin_strings", "arrow_strings"]

ROW = ["experiment_id", "variation_id", "event_key"]
# Causes that strike events the predictor expects to count (so they also explain expected - counted).
POST_PREDICTION = frozenset(c for c, v in CAUSES.items() if v.stage == "counting")
_NC_CODE = {"no_decision": "not_bucketed", "decision_after_conversion": "decision_after_conversion",
            "key_not_in_experiment": "key_not_in_experiment", "key_not_in_datafile": "key_not_in_datafile",
            "duplicate": "duplicate"}


def canonical_keys(keys: pd.Series, datafile: Datafile) -> pd.Series:
    """The datafile key each sent key means: itself, its near miss, or itself when unknown."""
    uniq = keys.dropna().unique().tolist()
    mapping = {k: k if k in datafile.events else (datafile.suggest_key(k) or k) for k in uniq}
    return keys.map(mapping).astype("string")


def first_impressions(ev: pd.DataFrame) -> pd.DataFrame:
    """Each visitor's first sent impression per experiment (by timestamp, then ledger order)."""
    imp = ev[(ev["kind"] == "impression").fillna(False)]
    imp = imp.sort_values(["timestamp", "_pos"], kind="stable").drop_duplicates(["visitor_id", "experiment_id"])
    return imp.reset_index(drop=True)


def conversion_pairs(ev: pd.DataFrame, first: pd.DataFrame, datafile: Datafile) -> pd.DataFrame:
    conv = ev[(ev["kind"] == "conversion").fillna(False)].drop(columns=["experiment_id", "variation_id"])
    conv = conv.assign(event_key=canonical_keys(conv["key"], datafile))
    running = {e.id for e in datafile.running_experiments()}
    key_exp = pd.DataFrame(
        [(k, x) for k, e in datafile.events.items() for x in e.experiment_ids if x in running],
        columns=["event_key", "experiment_id"],
    ).astype("string")
    cx = conv.merge(key_exp, on="event_key", how="left")
    dec = first[["visitor_id", "experiment_id", "variation_id", "status", "last_status"]].rename(
        columns={"status": "imp_status", "last_status": "imp_last_status"})
    cx = cx.merge(dec, on=["visitor_id", "experiment_id"], how="left")
    has = cx["variation_id"].notna().to_numpy()
    any_has = pd.Series(has).groupby(cx["uuid"].to_numpy()).transform("any").to_numpy()
    return cx[has | ~any_has].reset_index(drop=True)


def delivery_codes(status: pd.Series, last_status: pd.Series) -> np.ndarray:
    """Code of a delivery failure (None when delivered)."""
    failed = (status != "delivered").fillna(True).to_numpy()
    st = last_status.astype("Float64").fillna(0).to_numpy()
    code = np.where(st == 400, "rejected_400", np.where(np.isin(st, (401, 403)), "forbidden_403", "not_delivered"))
    return np.where(failed, code, None)


def isin_strings(s: pd.Series, values) -> np.ndarray:
    """``s.isin(values)`` for large string sets, through Arrow (pandas' string isin loops in Python)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    value_set = values if isinstance(values, pa.Array) else pa.array(list(values), type=pa.string())
    arr = arrow_strings(s)
    return pc.fill_null(pc.is_in(arr, value_set=value_set), False).to_numpy(zero_copy_only=False).astype(bool)


def arrow_strings(s: pd.Series):
    """A string Series as an Arrow (chunked) array, zero-copy when pandas already stores it in Arrow."""
    import pyarrow as pa

    arr = s.astype("string").array
    if hasattr(arr, "__arrow_array__"):
        return arr.__arrow_array__()
    return pa.array(arr.to_numpy(dtype=object, na_value=None), type=pa.string())


def epoch_ms(s: pd.Series) -> pd.Series:
    """UTC datetimes -> Int64 epoch milliseconds (NaT -> null)."""
    s = s.astype("datetime64[ms, UTC]")
    out = pd.Series(pd.NA, index=s.index, dtype="Int64")
    ok = s.notna()
    out[ok] = s[ok].astype("int64")
    return out


def _windows(results: pd.DataFrame) -> pd.DataFrame:
    r = results.dropna(subset=["experiment_id"])
    w = r.groupby("experiment_id").agg(win_start=("start_time", "min"), win_end=("end_time", "max")).reset_index()
    for c in ("win_start", "win_end"):
        w[c] = epoch_ms(w[c])
    return w.astype({"experiment_id": "string"})


def assign_reasons(
    frame: pd.DataFrame,
    *,
    datafile: Datafile,
    not_counted: pd.DataFrame | None,
    results: pd.DataFrame,
    e3_uuids,
    as_of_ms: int,
    lag_ms: int,
    conversions: bool,
) -> pd.Series:
    """One reason code (or null) per row of ``frame`` (conversion pairs or first impressions)."""
    n = len(frame)
    conds: list[np.ndarray] = []
    codes: list[np.ndarray | str] = []

    def add(cond, code) -> None:
        conds.append(np.asarray(pd.Series(cond).fillna(False).to_numpy(dtype=bool)))
        codes.append(code)

    deliv = delivery_codes(frame["status"], frame["last_status"])
    add(deliv != None, deliv)  # noqa: E711 (elementwise)
    if conversions:
        in_df = frame["key"].isin(list(datafile.events)).to_numpy()
        near = (frame["key"] != frame["event_key"]).fillna(False).to_numpy()
        add(near, "key_mismatch")
        add(~in_df & ~near, "key_not_in_datafile")
        imp_failed = frame["variation_id"].notna() & (frame["imp_status"] != "delivered").fillna(True)
        add(imp_failed, "decision_not_delivered")
        nc_code = pd.Series([None] * n, dtype="object")
        if not_counted is not None and len(not_counted):
            nc = not_counted.assign(code=not_counted["reason"].map(_NC_CODE))
            by_exp = nc[nc["experiment_id"].notna()].drop_duplicates(["uuid", "experiment_id"])
            by_uuid = nc[nc["experiment_id"].isna()].drop_duplicates("uuid")
            a = frame[["uuid", "experiment_id"]].merge(by_exp[["uuid", "experiment_id", "code"]],
                                                       on=["uuid", "experiment_id"], how="left")["code"]
            b = frame[["uuid"]].merge(by_uuid[["uuid", "code"]], on="uuid", how="left")["code"]
            nc_code = a.where(a.notna(), b).astype("object")
        add(nc_code.notna(), nc_code.to_numpy())
    if e3_uuids is not None:
        add(~isin_strings(frame["uuid"], e3_uuids), "dropped_by_optimizely")
    if len(results):
        w = frame[["experiment_id"]].merge(_windows(results), on="experiment_id", how="left")
        ts = frame["timestamp"].reset_index(drop=True)
        add((ts < w["win_start"]) | (ts > w["win_end"]), "outside_window")
    add(frame["delivered_at"] > as_of_ms - lag_ms, "processing_lag")
    if not conds:
        return pd.Series([None] * n, dtype="object")
    out = np.select(conds, [np.broadcast_to(np.asarray(c, dtype=object), (n,)) for c in codes], default=None)
    return pd.Series(out, dtype="object", index=frame.index)
