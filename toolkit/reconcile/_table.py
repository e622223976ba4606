"""The reconciliation table: sent, delivered, expected, counted per row and metric, with status."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..datafile import Datafile
from ._model import METRICS, Tolerance
from ._pairs import POST_PREDICTION, ROW

__all__ = ["build_table", "REVENUE_RATIOS"]

KEYS = [*ROW, "metric"]
# counted / expected revenue near these: the amounts were sent (or reported) in major units
REVENUE_RATIOS = ((50.0, 200.0), (0.005, 0.02))


def _long(frame: pd.DataFrame, name: str, metrics=METRICS) -> pd.DataFrame:
    cols = [m for m in metrics if m in frame.columns]
    out = frame.melt(id_vars=ROW, value_vars=cols, var_name="metric", value_name=name)
    out[name] = pd.to_numeric(out[name], errors="coerce").fillna(0)
    return out


def _side(pairs: pd.DataFrame, first: pd.DataFrame, mask_pairs, mask_first, name: str) -> pd.DataFrame:
    """Sums over the events selected by the masks, for the four metrics, in long form."""
    p = pairs[mask_pairs]
    conv = p.groupby(ROW, dropna=False).agg(
        total_conversions=("uuid", "size"), unique_conversions=("visitor_id", "nunique"),
        revenue=("revenue", lambda s: s.fillna(0).sum()),
    ).reset_index()
    f = first[mask_first]
    vis = f.groupby(["experiment_id", "variation_id"], dropna=False).size().rename("visitors").reset_index()
    vis["event_key"] = pd.NA
    return pd.concat([_long(conv, name), _long(vis, name, ("visitors",))], ignore_index=True)


def _explained_unique(pairs: pd.DataFrame, post: bool) -> pd.DataFrame:
    """Visitors of a row all of whose conversions there have a reason (post: yet one was expected)."""
    has = pairs["reason"].notna()
    pre = has & ~pairs["reason"].isin(POST_PREDICTION)
    g = pd.DataFrame({**{c: pairs[c] for c in ROW}, "visitor_id": pairs["visitor_id"], "all": has,
                      "expected": ~pre}).groupby([*ROW, "visitor_id"], dropna=False).agg(
        all=("all", "all"), expected=("expected", "any")).reset_index()
    sel = g["all"] & g["expected"] if post else g["all"]
    out = g[sel].groupby(ROW, dropna=False).size().rename("unique_conversions").reset_index()
    return _long(out, "post" if post else "explained", ("unique_conversions",))


def _explained(pairs, first, post: bool) -> pd.DataFrame:
    name = "post" if post else "explained"
    mp = pairs["reason"].isin(POST_PREDICTION) if post else pairs["reason"].notna()
    mf = first["reason"].isin(POST_PREDICTION) if post else first["reason"].notna()
    side = _side(pairs, first, mp, mf, name)
    side = side[side["metric"] != "unique_conversions"]
    return pd.concat([side, _explained_unique(pairs, post)], ignore_index=True)


def _counted(results: pd.DataFrame, datafile: Datafile) -> pd.DataFrame:
    r = results.copy()
    by_id = {e.id: e.key for e in datafile.events.values()}
    key_of = r["event_id"].map(by_id)
    r["event_key"] = key_of.where(key_of.notna(), r["event_key"]).astype("string")
    vis = r.groupby(["experiment_id", "variation_id"])["visitors"].max().reset_index()
    vis["event_key"] = pd.NA
    conv = r[r["event_key"].notna()]
    return pd.concat([_long(conv, "counted", METRICS[1:]), _long(vis, "counted", ("visitors",))], ignore_index=True)


def _expected(counts: pd.DataFrame) -> pd.DataFrame:
    vis = counts.groupby(["experiment_id", "variation_id"])["visitors"].max().reset_index()
    vis["event_key"] = pd.NA
    conv = counts[counts["event_key"].notna()]
    return pd.concat([_long(conv, "expected", METRICS[1:]), _long(vis, "expected", ("visitors",))], ignore_index=True)


def _merge_all(parts: list[pd.DataFrame]) -> pd.DataFrame:
    norm = []
    for p in parts:
        p = p.astype({"experiment_id": "string", "variation_id": "string", "event_key": "string", "metric": "string"})
        # outer merges do not match nulls reliably: use a sentinel for the keys
        norm.append(p.assign(**{c: p[c].fillna("\x00") for c in ROW}))
    out = norm[0]
    for p in norm[1:]:
        out = out.merge(p, on=KEYS, how="outer")
    for c in ROW:
        out[c] = out[c].mask(out[c] == "\x00").astype("string")
    return out


def build_table(
    pairs: pd.DataFrame,
    first: pd.DataFrame,
    counts: pd.DataFrame,
    results: pd.DataFrame,
    datafile: Datafile,
    tolerance: Tolerance,
) -> pd.DataFrame:
    delivered_p = (pairs["status"] == "delivered").fillna(False)
    delivered_f = (first["status"] == "delivered").fillna(False)
    t = _merge_all([
        _side(pairs, first, np.ones(len(pairs), bool), np.ones(len(first), bool), "sent"),
        _side(pairs, first, delivered_p, delivered_f, "delivered"),
        _expected(counts),
        _counted(results, datafile),
        _explained(pairs, first, post=False),
        _explained(pairs, first, post=True),
    ])
    num = ["sent", "delivered", "expected", "counted", "explained", "post"]
    t[num] = t[num].fillna(0)
    t["explained_post"] = t["post"]
    if len(results):  # only the experiments the results cover (plus events no experiment takes)
        t = t[t["experiment_id"].isin(set(results["experiment_id"].dropna())) | t["experiment_id"].isna()]
    t = t[(t[["sent", "delivered", "expected", "counted"]] != 0).any(axis=1)].copy()

    # window / lag / E3-absence can only explain a shortfall of counted against expected: events that
    # carry such a cause but were counted anyway (a fast pipeline) explain nothing
    t["post"] = np.minimum(t["post"], (t["expected"] - t["counted"]).clip(lower=0))
    t["explained"] = t["explained"] - t["explained_post"] + t["post"]
    t["gap"] = t["sent"] - t["counted"]
    t["unexplained"] = t["gap"] - t["explained"]
    t["model_gap"] = t["expected"] - t["counted"] - t["post"]
    t["diagnoses"] = ""
    # revenue reported or sent in major units: the whole revenue difference is that
    rev = (t["metric"] == "revenue") & (t["expected"] > 0) & (t["counted"] > 0)
    ratio = (t["counted"] / t["expected"].where(t["expected"] != 0)).fillna(1.0)
    units = rev & np.logical_or.reduce([ratio.between(lo, hi) for lo, hi in REVENUE_RATIOS])
    t.loc[units, "explained"] = t.loc[units, "gap"]
    t.loc[units, ["unexplained", "model_gap"]] = 0
    t.loc[units, "diagnoses"] = "revenue_units"
    t["revenue_ratio"] = ratio.where(rev)

    base = t[["sent", "counted"]].abs().max(axis=1)
    ok = tolerance.within(t["sent"], t["counted"]) & tolerance.within(t["expected"], t["counted"])
    explained = (t["unexplained"].abs() <= tolerance.abs + tolerance.rel * base) & (
        t["model_gap"].abs() <= tolerance.abs + tolerance.rel * base)
    t["status"] = np.where(ok, "ok", np.where(explained, "explained", "gap"))
    return t
