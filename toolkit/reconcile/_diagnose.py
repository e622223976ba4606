"""Diagnoses: each cause with the number of events (or visitors) it explains, examples and the fix."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pandas as pd

from ..datafile import Datafile
from ._model import CAUSES, Diagnosis

__all__ = ["quarantine_keys", "event_diagnoses", "run_diagnoses", "unexplained_diagnosis", "make", "inflation_count"]

MAX_EXAMPLES = 5
_DELIVERY = ("rejected_400", "forbidden_403", "not_delivered")


def make(code: str, count: int, unit: str, examples=(), detail: str = "") -> Diagnosis:
    c = CAUSES[code]
    return Diagnosis(code, c.title, int(count), unit, tuple(examples)[:MAX_EXAMPLES], c.fix, detail)


def _examples(frame: pd.DataFrame, cols: list[str]) -> list[dict[str, Any]]:
    head = frame.head(MAX_EXAMPLES)[cols]
    return [{k: (None if pd.isna(v) else (int(v) if isinstance(v, int | float) and k == "timestamp" else str(v)))
             for k, v in row.items()} for row in head.to_dict("records")]


def event_diagnoses(
    pairs: pd.DataFrame, first: pd.DataFrame, ledger_events: pd.DataFrame, run: Mapping[str, str],
    datafile: Datafile, requests: pd.DataFrame, quarantined: pd.DataFrame, post_budget: int,
) -> list[Diagnosis]:
    """``post_budget``: how many events the counting-stage causes (E3 absence, window, lag) explain in
    the table; they are handed out in catalogue order, each up to the events that carry it."""
    """Per-event causes: delivery failures (all events), then conversion and impression causes."""
    out: list[Diagnosis] = []
    ev = ledger_events
    st = ev["last_status"].astype("Float64")
    failed = (ev["status"] != "delivered").fillna(True)
    # delivery: counted over every ledger event, whatever its kind
    rejected = ev[failed & (st == 400).fillna(False)]
    if len(rejected):
        ids = {"account_id": (run.get("account_id"), datafile.account_id),
               "project_id": (run.get("project_id"), datafile.project_id)}
        wrong = [f"{k} sent {a!r}, datafile says {b!r}" for k, (a, b) in ids.items() if a and a != b]
        detail = ("wrong ids: " + "; ".join(wrong)) if wrong else "the run's account/project ids match the datafile"
        errs = rejected["last_error"].dropna().value_counts().head(3)
        if len(errs):
            detail += "; errors: " + "; ".join(f"{e} (x{n})" for e, n in errs.items())
        out.append(make("rejected_400", len(rejected), "events", _examples(rejected, ["uuid", "kind", "key"]), detail))
    bad_batches = set(requests.loc[requests["status"].isin([401, 403]).fillna(False), "batch_id"])
    forb = ev[ev["batch_id"].isin(bad_batches) | (failed & st.isin([401, 403]).fillna(False))]
    if len(forb):
        out.append(make("forbidden_403", len(forb), "events", _examples(forb, ["uuid", "kind", "key"]),
                        f"{len(bad_batches)} request body(ies) answered 401/403"))
    other = ev[failed & ~ev.index.isin(rejected.index) & ~ev.index.isin(forb.index)]
    if len(other):
        by = other["status"].value_counts().to_dict()
        out.append(make("not_delivered", len(other), "events", _examples(other, ["uuid", "kind", "status", "last_error"]),
                        "by status: " + ", ".join(f"{k} {v}" for k, v in by.items())))

    conv = pairs[pairs["reason"].notna() & ~pairs["reason"].isin(_DELIVERY)]
    imps = first[first["reason"].notna() & ~first["reason"].isin(_DELIVERY)]
    q_near = (quarantined["key"] != quarantined["event_key"]).fillna(False)
    q_by_code = {"key_mismatch": quarantined[q_near], "key_not_in_datafile": quarantined[~q_near]}
    for code in CAUSES:
        c = conv[conv["reason"] == code]
        i = imps[imps["reason"] == code]
        q = q_by_code.get(code, quarantined.iloc[0:0])
        if not len(c) and not len(i) and not len(q):
            continue
        n_conv, n_vis = c["uuid"].nunique(), c["visitor_id"].nunique()
        if code in q_by_code:
            keys = pd.concat([c.drop_duplicates("uuid")[["key", "event_key"]], q[["key", "event_key"]]])
            counts = keys.groupby(["key", "event_key"], dropna=False).size().sort_values(ascending=False)
            examples = [f"{k!r} -> {m!r} ({n})" if k != m else f"{k!r} ({n})" for (k, m), n in counts.items()]
            detail = (f"{n_conv} sent, {len(q)} quarantined by the mapping (never sent); "
                      + ("sent key -> the datafile key it most likely meant" if code == "key_mismatch"
                         else f"datafile keys: {', '.join(sorted(datafile.events))}"))
            n_conv += len(q)
        else:
            examples = _examples(c.drop_duplicates("uuid"), ["uuid", "key", "visitor_id", "experiment_id"])
            detail = f"{n_conv} conversion(s) of {n_vis} visitor(s)"
        if len(i):
            examples += _examples(i, ["uuid", "visitor_id", "experiment_id"])
            detail += ("; " if n_conv else "") + f"{len(i)} visitor decision(s)"
        unit = "events" if n_conv else "visitors"
        n = n_conv + len(i)
        if CAUSES[code].stage == "counting":
            n, post_budget = min(n, post_budget), post_budget - min(n, post_budget)
            if not n:
                continue
            detail += f"; {n} of them missing from the results"
        out.append(make(code, n, unit, examples, detail))
    return out


_QUARANTINED_KEY = re.compile(r"event key '((?:[^'\\]|\\.)*)'|event key \"([^\"]*)\"")


def quarantine_keys(quarantine: pd.DataFrame | None, datafile: Datafile) -> pd.DataFrame:
    """Mapped-out events whose key is not in the datafile: (source_event_id, key, event_key) where
    event_key is the near miss (or the key itself). They were never sent, so no table row has them."""
    cols = ["source_event_id", "key", "event_key"]
    if quarantine is None or not len(quarantine):
        return pd.DataFrame(columns=cols)
    q = quarantine[(quarantine["reason"] == "key_not_in_datafile").fillna(False)]
    found = q["detail"].astype("string").str.extract(_QUARANTINED_KEY)
    key = found[0].fillna(found[1]).astype("string")
    out = pd.DataFrame({"source_event_id": q["source_event_id"], "key": key})
    out["event_key"] = out["key"].map(lambda k: (datafile.suggest_key(k) or k) if isinstance(k, str) else k)
    return out[cols]


def inflation_count(mapping: Any) -> int | None:
    """People counted as several visitors (more than one anonymous id, not stitched), from a
    ``toolkit.mapping.MapSummary``, its dict form, or a plain count."""
    if mapping is None:
        return None
    if isinstance(mapping, int) and not isinstance(mapping, bool):
        return mapping
    get = mapping.get if isinstance(mapping, Mapping) else (lambda k, d=None: getattr(mapping, k, d))
    if get("identity") == "stitched":
        return 0
    n = get("multi_anonymous")
    return int(n) if isinstance(n, int) and not isinstance(n, bool) else None


def run_diagnoses(
    run: Mapping[str, str], datafile: Datafile, ledger_events: pd.DataFrame, e3_revisions: set[str],
    inflation: int | None,
) -> list[Diagnosis]:
    out: list[Diagnosis] = []
    sent_rev = run.get("revision")
    others = {f"current datafile {datafile.revision}"} if sent_rev and sent_rev != datafile.revision else set()
    others |= {f"E3 revision {r}" for r in e3_revisions if sent_rev and r and r != sent_rev}
    if others:
        out.append(make("stale_datafile", len(ledger_events), "events",
                        [f"replay revision {sent_rev}", *sorted(others)],
                        f"all {len(ledger_events)} events of the run were built from revision {sent_rev}"))
    if inflation:
        out.append(make("visitor_inflation", inflation, "visitors", [],
                        f"{inflation} person(s) carried more than one anonymous id: each counts as several visitors"))
    return out


def _text(*values: Any) -> str:
    return next((str(v) for v in values if isinstance(v, str) and v), "")


def unexplained_diagnosis(table: pd.DataFrame) -> Diagnosis:
    left = table[(table["unexplained"] != 0) | (table["model_gap"] != 0)]
    conv = left[left["metric"] == "total_conversions"]
    vis = left[left["metric"] == "visitors"]
    n = int(conv["unexplained"].abs().sum())
    worst = left.reindex(left["unexplained"].abs().sort_values(ascending=False).index)
    examples = [
        f"{_text(r.experiment_key, r.experiment_id, '-')} / {_text(r.variation_key, r.variation_id, '(no decision)')}"
        f" / {_text(r.event_key, None, '(visitors)')} {r.metric}: unexplained {r.unexplained:g}, "
        f"model gap {r.model_gap:g}"
        for r in worst.itertuples()
    ]
    detail = (f"{n} conversion(s) and {int(vis['unexplained'].abs().sum())} visitor(s) unexplained; "
              f"{len(left)} row(s) affected; model gap {int(conv['model_gap'].abs().sum())} conversion(s)")
    return make("unexplained", n, "events", examples, detail)
