"""Hand-built EVENTS frames, ledgers and results for the reconcile tests."""

from __future__ import annotations

import uuid as _uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from toolkit.contracts import EVENTS, Body, conform
from toolkit.ledger import BatchResult, Ledger, RequestRecord, read_ledger

T0 = 1_700_000_000_000  # ms
EXP, LAYER, CONTROL, TREATMENT = "50001", "60001", "70001", "70002"
PURCHASE_ID = "40001"


def uid(*parts: object) -> str:
    return str(_uuid.uuid5(_uuid.NAMESPACE_URL, "/".join(map(str, parts))))


def impression(visitor: str, ts: int, variation: str = CONTROL, *, exp: str = EXP, layer: str = LAYER) -> dict:
    return {"kind": "impression", "uuid": uid("imp", visitor, exp, ts), "visitor_id": visitor, "timestamp": ts,
            "key": "campaign_activated", "entity_id": layer, "campaign_id": layer, "experiment_id": exp,
            "variation_id": variation, "rule_type": "experiment", "tags": "{}", "synthesized": False,
            "source_event_id": f"src-imp-{visitor}-{ts}"}


def conversion(visitor: str, ts: int, key: str = "purchase", revenue: int | None = 1000, entity: str | None = PURCHASE_ID,
               n: int = 0) -> dict:
    return {"kind": "conversion", "uuid": uid("conv", visitor, key, ts, n), "visitor_id": visitor, "timestamp": ts,
            "key": key, "entity_id": entity, "revenue": revenue, "tags": "{}", "synthesized": False,
            "source_event_id": f"src-{visitor}-{ts}-{n}"}


def events_frame(rows: list[dict]) -> pd.DataFrame:
    return conform(pd.DataFrame.from_records(rows), EVENTS)


def scenario(n_ok: int = 20) -> tuple[pd.DataFrame, dict[str, int]]:
    """n_ok attributed buyers plus one visitor per defect; returns the events and the defect counts."""
    rows: list[dict] = []
    for i in range(n_ok):
        v = f"ok{i}"
        rows.append(impression(v, T0 + i, CONTROL if i % 2 else TREATMENT))
        rows.append(conversion(v, T0 + 1000 + i))
    for i in range(3):  # no decision at all
        rows.append(conversion(f"nodec{i}", T0 + 2000 + i))
    rows.append(impression("late", T0 + 5000, CONTROL))  # decision after the conversion
    rows.append(conversion("late", T0 + 4000))
    for i in range(2):  # mis-cased key
        rows.append(impression(f"case{i}", T0 + 10 + i, TREATMENT))
        rows.append(conversion(f"case{i}", T0 + 3000 + i, key="Purchase", entity=None))
    return events_frame(rows), {"not_bucketed": 3, "decision_after_conversion": 1, "key_mismatch": 2}


def ledger_from_events(path: Path, events: pd.DataFrame, *, status_of=None, run: dict | None = None,
                       delivered_at: datetime | None = None):
    """A real ledger file: one batch per event kind x outcome, written through Ledger's own API.

    ``status_of(row) -> (status, http_status)``; default delivered with 204.
    """
    status_of = status_of or (lambda r: ("delivered", 204))
    outcome = [status_of(r) for r in events.itertuples()]
    ev = events.assign(_st=[o[0] for o in outcome], _code=[o[1] for o in outcome])
    when = delivered_at or datetime(2023, 11, 14, 23, 0, tzinfo=UTC)
    run = {"run_id": "test", "account_id": "12345678", "project_id": "98765432", "revision": "42", **(run or {})}
    with Ledger.create(path, run=run) as book:
        for i, ((st, code), grp) in enumerate(ev.groupby(["_st", "_code"], sort=True)):
            body = Body(batch_id=f"b{i}-{st}", data=b"{}", events=grp.drop(columns=["_st", "_code"]),
                        n_visitors=grp["visitor_id"].nunique())
            book.begin([body])
            req = RequestRecord(body.batch_id, 1, when - timedelta(seconds=1), 5.0, 2, int(code) if code else None,
                                None if st == "delivered" else f"HTTP {code}")
            book.finish([BatchResult(body.batch_id, st, 1, int(code) if code else None, req.error, (req,))])
    return read_ledger(path)
