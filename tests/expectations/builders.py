"""Frames for the expectation tests: a clean run that passes every rule, and small mutations."""

from __future__ import annotations

import pandas as pd

from toolkit.contracts import EVENTS, QUARANTINE, conform, empty

T = 1_780_000_000_000  # 2026-05-28, epoch ms
NOW = T + 86_400_000
WINDOW = (T - 3_600_000, T + 3_600_000)


def conv(row: int, visitor: str, key: str, ts: int, *, revenue=None, currency: str | None = None,
         entity: str = "40001") -> dict:
    tags = "{}" if currency is None else f'{{"currency":"{currency}"}}'
    return dict(kind="conversion", uuid=f"u{row}", visitor_id=visitor, timestamp=ts, key=key, entity_id=entity,
                revenue=revenue, tags=tags, source_row=row, source_event_id=f"s{row}")


def imp(row: int, visitor: str, exp: str, var: str, ts: int) -> dict:
    return dict(kind="impression", uuid=f"u{row}", visitor_id=visitor, timestamp=ts, key="campaign_activated",
                entity_id="6" + exp[1:], campaign_id="6" + exp[1:], experiment_id=exp, variation_id=var,
                tags="{}", source_row=row, source_event_id=f"s{row}")


def clean_rows() -> list[dict]:
    """Every rule passes: decisions before conversions, integer revenue per currency, unique uuids."""
    return [
        imp(1, "v1", "50001", "70001", T),
        conv(2, "v1", "purchase", T + 1000, revenue=1999, currency="USD"),
        conv(3, "v1", "purchase", T + 2000, revenue=2500, currency="USD"),
        conv(4, "v1", "add_to_cart", T + 1500, entity="40002"),
        imp(5, "v2", "50002", "70003", T),
        conv(6, "v2", "signup", T + 10, entity="40005"),
        conv(9, "v1", "purchase", T + 3000, revenue=2000, currency="USD"),
        conv(10, "v2", "purchase", T + 3000, revenue=2100, currency="USD"),
        conv(11, "v2", "purchase", T + 4000, revenue=1800, currency="USD"),
        conv(12, "v2", "purchase", T + 5000, revenue=250, currency="JPY"),  # exponent 0: its own median
        conv(13, "v2", "purchase", T + 6000, revenue=12345, currency="KWD"),  # exponent 3
        conv(14, "v3", "form_submit", T + 10, entity="40004"),  # no experiment uses it: no decision needed
    ]


def events(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    revenue = frame.pop("revenue") if "revenue" in frame.columns else None
    out = conform(frame, EVENTS)
    if revenue is not None:  # kept as given so a non-integer can be tested
        try:
            out["revenue"] = revenue.astype("Int64")
        except (TypeError, ValueError):
            out["revenue"] = revenue.astype(object)
    return out


def quarantine(*rows: tuple[int, str]) -> pd.DataFrame:
    if not rows:
        return empty(QUARANTINE)
    return conform(pd.DataFrame([dict(source_event_id=f"s{r}", source_row=r, reason=reason, detail=f"{reason} here")
                                 for r, reason in rows]), QUARANTINE)


def patch(rows: list[dict], row: int, **changes) -> list[dict]:
    return [dict(r, **changes) if r["source_row"] == row else r for r in rows]
