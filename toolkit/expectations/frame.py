"""The validation frame: one row per mapped event and one per quarantined row, with the columns
the suites check. A pure function of the mapping stage's output and the datafile.

Most rules are plain Great Expectations column expectations over these columns; the few values a
built-in expectation cannot compute from one row (a decision earlier in time, whether a revenue is
a whole number whatever the dtype, the currency inside the tags JSON) are precomputed here,
vectorized, and documented in :data:`COLUMNS` (and in the suite files that use them).
"""

from __future__ import annotations

import pandas as pd

from ..contracts import CAMPAIGN_ACTIVATED, EVENTS, QUARANTINE, conform
from ..datafile import Datafile

__all__ = ["build_validation_frame", "COLUMNS"]

COLUMNS: dict[str, str] = {
    # -- per-domain columns: null outside the rows a rule is about, so GX needs no row_condition
    # (pandas query per metric is too slow at 1M rows); column expectations ignore nulls.
    "has_visitor_id": "events: True when the visitor id is present; null for quarantined rows",
    "has_timestamp": "events: True when the timestamp is present; null for quarantined rows",
    "window_timestamp": "events: the timestamp again, for the run-window rule (GX keeps one expectation "
                        "per type and column: a second between-check on 'timestamp' would replace the first)",
    "experiment_status": "impressions: the datafile status of their experiment (Running, Paused, ...); null "
                         "otherwise or when the experiment is unknown",
    "conversion_key": "conversions: the event key; null otherwise",
    "experiment_variation": "impressions: 'experiment_id:variation_id'; null otherwise",
    "purchase_revenue": "purchase conversions: the revenue; null otherwise",
    "purchase_has_revenue": "purchase conversions: True when revenue is present; null otherwise",
    "purchase_has_currency": "purchase conversions: True when the currency tag is present; null otherwise",
    "origin": "event (a mapped Optimizely event) | quarantine (a row the loader or mapper rejected)",
    "kind": "conversion | impression (events only)",
    "uuid": "the event uuid",
    "visitor_id": "the visitor id",
    "timestamp": "event time, epoch ms (Int64)",
    "key": "event key, campaign_activated for impressions",
    "entity_id": "datafile event id / campaign id",
    "revenue": "revenue in minor units as a number (Float64, so a non-integer can be seen)",
    "revenue_is_integer": "True when revenue is a whole number; null when there is no revenue",
    "currency": "the currency tag (from the tags JSON); null when absent",
    "value": "the value field",
    "experiment_id": "impression: the experiment id",
    "variation_id": "impression: the variation id",
    "has_earlier_decision": "conversion of a key used by experiments: True when the visitor has an "
                            "impression for one of them strictly earlier; null otherwise",
    "outcome": "mapped (conversions) or the quarantine reason (quarantined rows); null for impressions",
    "quarantine_reason": "quarantined rows: the reason code",
    "detail": "quarantined rows: what was wrong (e.g. the near-miss key)",
    "source_row": "row / line in the export",
    "source_event_id": "the export's event id",
}

_CURRENCY_RE = r'"currency"\s*:\s*"([^"]*)"'


def _revenue(events: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Revenue as Float64 plus whether each value is a whole number (null where no revenue)."""
    raw = events["revenue"] if "revenue" in events.columns else pd.Series(pd.NA, index=events.index)
    num = pd.to_numeric(raw.astype(object) if raw.dtype == object else raw, errors="coerce").astype("Float64")
    unparsed = raw.notna() & num.isna()  # text that is not a number: not an integer either
    whole = (num == num.round(0)) & (num.abs() < 2.0**63)
    is_int = whole.astype("boolean").mask(raw.isna(), pd.NA)
    is_int = is_int.mask(unparsed, False)
    return num, is_int


def _earlier_decision(events: pd.DataFrame, datafile: Datafile) -> pd.Series:
    """For conversions of keys attached to experiments: an impression of one of them, earlier."""
    out = pd.Series(pd.NA, index=events.index, dtype="boolean")
    key_exp = pd.DataFrame(
        [(k, e) for k, ev in datafile.events.items() for e in ev.experiment_ids],
        columns=["key", "experiment_id"], dtype="string",
    )
    conv = events.loc[events["kind"] == "conversion", ["visitor_id", "key", "timestamp"]]
    conv = conv[conv["key"].isin(key_exp["key"])]
    if conv.empty:
        return out
    imps = events.loc[events["kind"] == "impression", ["visitor_id", "experiment_id", "timestamp"]]
    first = imps.groupby(["visitor_id", "experiment_id"], observed=True, dropna=True)["timestamp"].min()
    first = first.rename("first_decision").reset_index()
    m = conv.reset_index(names="_row").merge(key_exp, on="key").merge(first, on=["visitor_id", "experiment_id"],
                                                                      how="left")
    earlier = (m["first_decision"] < m["timestamp"]).fillna(False).astype(bool)
    any_earlier = earlier.groupby(m["_row"]).any()
    out.loc[any_earlier.index] = any_earlier.to_numpy()
    return out


def build_validation_frame(events: pd.DataFrame, quarantine: pd.DataFrame, datafile: Datafile) -> pd.DataFrame:
    """EVENTS + QUARANTINE rows -> the validation frame (:data:`COLUMNS`), RangeIndex."""
    raw_revenue = events["revenue"] if "revenue" in events.columns else None
    ev = conform(events.drop(columns=["revenue"], errors="ignore"), {k: v for k, v in EVENTS.items()
                                                                     if k != "revenue"})
    ev = ev.reset_index(drop=True)
    if raw_revenue is not None:
        ev["revenue"] = raw_revenue.reset_index(drop=True)
    else:
        ev["revenue"] = pd.Series(pd.NA, index=ev.index, dtype="Int64")
    q = conform(quarantine, QUARANTINE).reset_index(drop=True)

    revenue, revenue_is_integer = _revenue(ev)
    tags = ev["tags"].astype("string")
    currency = tags.str.extract(_CURRENCY_RE, expand=False).astype("string")
    is_conv = ev["kind"] == "conversion"
    outcome = pd.Series(pd.NA, index=ev.index, dtype="string").mask(is_conv.fillna(False), "mapped")
    key = ev["key"].mask((ev["kind"] == "impression").fillna(False) & ev["key"].isna(), CAMPAIGN_ACTIVATED)
    is_purchase = (is_conv & (ev["key"] == "purchase")).fillna(False).astype(bool)
    is_imp = (ev["kind"] == "impression").fillna(False).astype(bool)
    ev_part = pd.DataFrame({
        "has_visitor_id": ev["visitor_id"].notna().astype("boolean"),
        "has_timestamp": ev["timestamp"].notna().astype("boolean"),
        "window_timestamp": ev["timestamp"],
        "experiment_status": ev["experiment_id"].map(
            {e.id: e.status for e in datafile.experiments.values()}).astype("string").where(is_imp),
        "conversion_key": ev["key"].where(is_conv.fillna(False).astype(bool)),
        "experiment_variation": (ev["experiment_id"] + ":" + ev["variation_id"]).where(is_imp),
        "purchase_revenue": revenue.where(is_purchase),
        "purchase_has_revenue": revenue.notna().astype("boolean").where(is_purchase, pd.NA),
        "purchase_has_currency": currency.notna().astype("boolean").where(is_purchase, pd.NA),
        "origin": pd.Series("event", index=ev.index, dtype="string"),
        "kind": ev["kind"],
        "uuid": ev["uuid"],
        "visitor_id": ev["visitor_id"],
        "timestamp": ev["timestamp"],
        "key": key,
        "entity_id": ev["entity_id"],
        "revenue": revenue,
        "revenue_is_integer": revenue_is_integer,
        "currency": currency,
        "value": ev["value"],
        "experiment_id": ev["experiment_id"],
        "variation_id": ev["variation_id"],
        "has_earlier_decision": _earlier_decision(ev, datafile),
        "outcome": outcome,
        "quarantine_reason": pd.Series(pd.NA, index=ev.index, dtype="string"),
        "detail": pd.Series(pd.NA, index=ev.index, dtype="string"),
        "source_row": ev["source_row"],
        "source_event_id": ev["source_event_id"],
    })
    if q.empty:
        return ev_part
    q_part = pd.DataFrame({
        "origin": pd.Series("quarantine", index=q.index, dtype="string"),
        "outcome": q["reason"],
        "quarantine_reason": q["reason"],
        "detail": q["detail"],
        "source_row": q["source_row"],
        "source_event_id": q["source_event_id"],
    })
    q_part = q_part.reindex(columns=list(COLUMNS))
    for col in q_part.columns:
        q_part[col] = q_part[col].astype(ev_part[col].dtype)
    return pd.concat([ev_part, q_part], ignore_index=True)
