"""The attribution predictor: what Optimizely's results should show for a set of events.

``predict(events, datafile)`` is a pure function over an EVENTS frame (conversions and
impressions, as mapped or as delivered) and the datafile. The rules (facts file, section 6) and
the choices made where the sources are silent:

* Duplicates. Events with the same (``entity_id``, ``uuid``, ``timestamp``) are stored once by the
  Event API; the first in frame order (the order sent) is kept, the others are ``duplicate``.
  Applies to impressions too. A missing ``entity_id`` compares equal to another missing one.
* Decisions. An impression is a decision for its experiment when the experiment is in the
  datafile, is running (status ``Running``; rollout rules are not experiments) and the variation
  belongs to it. Impressions for paused, unknown or rollout experiments decide nothing.
* First variation. A visitor is attributed, in an experiment, to the variation of their earliest
  decision; decisions with the same timestamp are ordered by frame order (the first sent wins).
* Earlier. A conversion counts for an experiment only if the visitor's first decision for it has a
  timestamp *strictly* earlier than the conversion's. Equal timestamps do not count.
* Keys. A conversion counts only for the running experiments its datafile event lists in
  ``experimentIds``; a key not in the datafile counts nowhere (the SDK drops it).

Outputs (:class:`Prediction`):

``counts``: one row per running experiment x variation x event key attached to it, zeros
included (an experiment with no attached key gets rows with a null ``event_key`` carrying its
visitors). ``visitors`` = visitors whose first decision is that variation (reach);
``unique_conversions`` = of those, visitors with >= 1 counted conversion of the key;
``total_conversions`` = counted conversions; ``revenue`` = their revenue sum, minor units, nulls 0.

``not_counted``: why a conversion does not count, one row per conversion, or per conversion and
experiment when an experiment is the point:

=========================== =============================================================== ==========
reason                      when                                                             experiment
=========================== =============================================================== ==========
duplicate                   same (entity_id, uuid, timestamp) as an earlier event            null
key_not_in_datafile         the key is not a datafile event                                  null
key_not_in_experiment       the key is attached to no running experiment the visitor has a   null
                            decision for (nor to any running experiment at all)
no_decision                 the visitor has no decision in any running experiment; one row  each one
                            per running experiment the key is attached to                    of the key
decision_after_conversion   the visitor has a decision for an experiment of the key, but     that one
                            none strictly earlier than the conversion
=========================== =============================================================== ==========

So, per running experiment e and key k: conversions of k by visitors with a decision for e =
``total_conversions`` of (e, k) + ``decision_after_conversion`` rows of (e, k); and every
non-duplicate conversion either counts somewhere or has at least one ``not_counted`` row.
A visitor in experiment A who converts on a key of A and B counts in A and gets no row for B:
not being in B is not a delivery problem.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import pandas as pd

from .contracts import EVENTS, conform
from .datafile import Datafile

__all__ = ["predict", "Prediction", "NotCountedReason", "COUNTS", "NOT_COUNTED"]

log = logging.getLogger(__name__)

COUNTS: dict[str, str] = {
    "experiment_id": "string",
    "experiment_key": "string",
    "variation_id": "string",
    "variation_key": "string",
    "event_key": "string",
    "visitors": "Int64",
    "unique_conversions": "Int64",
    "total_conversions": "Int64",
    "revenue": "Int64",  # minor units
}

NOT_COUNTED: dict[str, str] = {
    "uuid": "string",
    "visitor_id": "string",
    "key": "string",
    "experiment_id": "string",
    "reason": "string",  # a NotCountedReason value
}


class NotCountedReason(StrEnum):
    """Why a conversion will not count. Add, never rename: reconcile keys on them."""

    NO_DECISION = "no_decision"
    DECISION_AFTER_CONVERSION = "decision_after_conversion"
    KEY_NOT_IN_EXPERIMENT = "key_not_in_experiment"
    KEY_NOT_IN_DATAFILE = "key_not_in_datafile"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class Prediction:
    """Predicted results (``counts``) and the conversions that will not count (``not_counted``)."""

    counts: pd.DataFrame = field(repr=False)
    not_counted: pd.DataFrame = field(repr=False)

    def reasons(self) -> dict[str, int]:
        """not_counted rows per reason (every reason present, zeros included)."""
        got = self.not_counted["reason"].value_counts()
        return {r.value: int(got.get(r.value, 0)) for r in NotCountedReason}

    def __repr__(self) -> str:
        n = int(self.counts["total_conversions"].sum()) if len(self.counts) else 0
        return f"Prediction({len(self.counts)} count rows, {n} conversions counted, {len(self.not_counted)} not counted)"


# ------------------------------------------------------------------------------------ datafile


def _running(datafile: Datafile) -> list:
    return sorted(datafile.running_experiments(), key=lambda e: e.key)


def _key_experiments(datafile: Datafile, running_ids: set[str]) -> pd.DataFrame:
    """(key, experiment_id) for every datafile event attached to a running experiment."""
    pairs = [(k, x) for k, ev in datafile.events.items() for x in ev.experiment_ids if x in running_ids]
    return pd.DataFrame(pairs, columns=["key", "experiment_id"]).drop_duplicates().astype("string")


def _grid(datafile: Datafile) -> pd.DataFrame:
    """Every running experiment x variation x attached key (null key if none is attached)."""
    rows = []
    for exp in _running(datafile):
        keys = sorted(k for k, ev in datafile.events.items() if exp.id in ev.experiment_ids) or [None]
        for var in exp.variations:
            for key in keys:
                rows.append((exp.id, exp.key, var.id, var.key, key))
    return pd.DataFrame(rows, columns=list(COUNTS)[:5]).astype("string")


# ------------------------------------------------------------------------------------- predict


def _first_decisions(imps: pd.DataFrame, datafile: Datafile, running_ids: set[str]) -> pd.DataFrame:
    """(visitor_id, experiment_id, variation_id, decision_ts): each visitor's first valid decision."""
    valid = pd.DataFrame(
        [(e.id, v.id) for e in datafile.experiments.values() if e.id in running_ids for v in e.variations],
        columns=["experiment_id", "variation_id"],
    ).astype("string")
    imps = imps[imps["visitor_id"].notna() & imps["timestamp"].notna()]
    ok = imps.merge(valid, on=["experiment_id", "variation_id"], how="inner")
    if len(ok) < len(imps):
        log.info("%d impression(s) decide nothing (experiment not running, unknown, or variation not in it)",
                 len(imps) - len(ok))
    ok = ok.sort_values(["visitor_id", "experiment_id", "timestamp", "_row"], kind="stable")
    first = ok.drop_duplicates(["visitor_id", "experiment_id"], keep="first")
    return first[["visitor_id", "experiment_id", "variation_id", "timestamp"]].rename(
        columns={"timestamp": "decision_ts"}
    )


def _isin(values: pd.Series, among: pd.Series) -> pd.Series:
    """``values.isin(among)`` for large string sets (pyarrow's hash set; nulls are never members)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    member = pc.is_in(pa.array(values.astype("string").array), value_set=pa.array(among.dropna().astype("string").array))
    return pd.Series(np.asarray(member.fill_null(False)), index=values.index, dtype=bool)


def _rows(frame: pd.DataFrame, reason: NotCountedReason, with_experiment: bool) -> pd.DataFrame:
    out = frame[["_row", "uuid", "visitor_id", "key"]].copy()
    out["experiment_id"] = frame["experiment_id"] if with_experiment else pd.NA
    out["reason"] = reason.value
    return out


def predict(events: pd.DataFrame, datafile: Datafile) -> Prediction:
    """Predict Optimizely's counts from EVENTS rows and the datafile (see the module doc)."""
    ev = conform(events, EVENTS).reset_index(drop=True)
    ev["_row"] = np.arange(len(ev), dtype=np.int64)
    running_ids = {e.id for e in datafile.running_experiments()}

    dup = ev.duplicated(["entity_id", "uuid", "timestamp"], keep="first")
    first = _first_decisions(ev[(ev["kind"] == "impression") & ~dup], datafile, running_ids)

    conv = ev.loc[(ev["kind"] == "conversion").fillna(False), ["_row", "uuid", "visitor_id", "key", "timestamp", "revenue"]]
    conv_dup = dup.loc[conv.index]
    in_datafile = conv["key"].isin(list(datafile.events)).fillna(False)
    parts = [
        _rows(conv[conv_dup], NotCountedReason.DUPLICATE, False),
        _rows(conv[~conv_dup & ~in_datafile], NotCountedReason.KEY_NOT_IN_DATAFILE, False),
    ]
    live = conv[~conv_dup & in_datafile]

    # conversion x (running experiment of its key), with the visitor's first decision there
    cx = live.merge(_key_experiments(datafile, running_ids), on="key", how="inner")
    cx = cx.merge(first, on=["visitor_id", "experiment_id"], how="left")
    has_decision = cx["decision_ts"].notna()
    counted = (has_decision & (cx["decision_ts"] < cx["timestamp"])).fillna(False)
    parts.append(_rows(cx[has_decision & ~counted], NotCountedReason.DECISION_AFTER_CONVERSION, True))

    # conversions with no decision in any experiment of their key
    decided_rows = cx.loc[has_decision, "_row"].unique()
    undecided = live[~live["_row"].isin(decided_rows)]
    visitor_decided = _isin(undecided["visitor_id"], first["visitor_id"])
    key_running = undecided["key"].isin(cx["key"].unique()).fillna(False)
    parts.append(_rows(undecided[visitor_decided | ~key_running], NotCountedReason.KEY_NOT_IN_EXPERIMENT, False))
    no_dec_rows = undecided.loc[~visitor_decided & key_running, "_row"]
    parts.append(_rows(cx[cx["_row"].isin(no_dec_rows)], NotCountedReason.NO_DECISION, True))

    not_counted = pd.concat([p for p in parts if len(p)] or [parts[0]], ignore_index=True)
    not_counted = not_counted.sort_values(["_row", "experiment_id"], kind="stable", na_position="first")
    not_counted = conform(not_counted.drop(columns="_row").reset_index(drop=True), NOT_COUNTED)

    return Prediction(counts=_counts(cx[counted], first, datafile), not_counted=not_counted)


def _counts(counted: pd.DataFrame, first: pd.DataFrame, datafile: Datafile) -> pd.DataFrame:
    reach = first.groupby(["experiment_id", "variation_id"]).size().rename("visitors").reset_index()
    conv = counted.assign(revenue=counted["revenue"].fillna(0)).groupby(
        ["experiment_id", "variation_id", "key"]
    ).agg(
        unique_conversions=("visitor_id", "nunique"),
        total_conversions=("_row", "size"),
        revenue=("revenue", "sum"),
    ).reset_index().rename(columns={"key": "event_key"})
    grid = _grid(datafile)
    out = grid.merge(reach.astype({"experiment_id": "string", "variation_id": "string"}),
                     on=["experiment_id", "variation_id"], how="left")
    out = out.merge(conv, on=["experiment_id", "variation_id", "event_key"], how="left")
    for col in ("visitors", "unique_conversions", "total_conversions", "revenue"):
        out[col] = out[col].fillna(0)
    return conform(out, COUNTS).reset_index(drop=True)
