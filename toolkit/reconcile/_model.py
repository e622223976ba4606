"""Types of the reconciliation: tolerance, diagnosis, result, and the catalogue of causes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = ["Tolerance", "Diagnosis", "Reconciliation", "CAUSES", "Cause", "METRICS", "TABLE_COLUMNS"]

METRICS = ("visitors", "unique_conversions", "total_conversions", "revenue")

TABLE_COLUMNS = [
    "experiment_id", "experiment_key", "variation_id", "variation_key", "event_key", "metric",
    "sent", "delivered", "expected", "counted", "gap", "explained", "unexplained", "model_gap",
    "status", "diagnoses",
]


@dataclass(frozen=True)
class Tolerance:
    """A row is within tolerance when ``|a - b| <= abs + rel * max(|a|, |b|)``."""

    abs: float = 0.0
    rel: float = 0.0

    def within(self, a, b):
        """Elementwise for Series (or scalars): is the difference of a and b tolerated?"""
        diff = (a - b).abs() if isinstance(a, pd.Series) else abs(a - b)
        big = pd.concat([a.abs(), b.abs()], axis=1).max(axis=1) if isinstance(a, pd.Series) else max(abs(a), abs(b))
        return diff <= self.abs + self.rel * big

    @classmethod
    def parse(cls, text: str) -> Tolerance:
        """``"ABS,REL"`` (e.g. ``"5,0.01"``), or one number for ABS."""
        parts = [p.strip() for p in text.split(",")]
        if len(parts) > 2 or not all(parts):
            raise ValueError(f"tolerance {text!r}: use ABS,REL such as 5,0.01")
        try:
            a = float(parts[0])
            r = float(parts[1]) if len(parts) == 2 else 0.0
        except ValueError:
            raise ValueError(f"tolerance {text!r}: ABS and REL must be numbers, such as 5,0.01") from None
        if a < 0 or not 0 <= r < 1:
            raise ValueError(f"tolerance {text!r}: ABS must be >= 0 and REL in [0, 1)")
        return cls(a, r)


@dataclass(frozen=True)
class Cause:
    title: str
    fix: str
    stage: str  # "delivery" (never reached Optimizely), "attribution" (predicted not to count), "counting"


# Every cause the reconciliation can name; codes are stable (reports key on them).
CAUSES: dict[str, Cause] = {
    "rejected_400": Cause(
        "400 Bad Request from the Event API",
        "check account_id and project_id against the Optimizely dashboard (Settings > Account / Projects) and "
        "that the datafile belongs to that project; then resume the replay",
        "delivery"),
    "forbidden_403": Cause(
        "403 Forbidden: invalid SDK key or wrong environment",
        "copy the SDK key of the right environment (Settings > Environments; regenerate it if revoked) and "
        "resume the replay",
        "delivery"),
    "not_delivered": Cause(
        "not delivered (failed after retries, or still pending)",
        "resume the replay (`toolkit replay --resume`); see last_error in the ledger for the cause",
        "delivery"),
    "key_mismatch": Cause(
        "event key mismatch (keys are case-sensitive)",
        "send the datafile's key exactly (fix the blueprint mapping), then replay the affected events",
        "attribution"),
    "key_not_in_datafile": Cause(
        "event key not in the datafile",
        "create the event in Optimizely (Events page) with this exact key, or map it to an existing key",
        "attribution"),
    "decision_not_delivered": Cause(
        "the visitor's decision (impression) was not delivered",
        "resume the replay so the decision events arrive; conversions count only after a decision",
        "attribution"),
    "not_bucketed": Cause(
        "visitor not bucketed: no decision in the experiment",
        "send activation (decision) events first: use --decisions export|bucket when mapping",
        "attribution"),
    "decision_after_conversion": Cause(
        "decision after the conversion",
        "the decision must be earlier than the conversion: send the activation when the visitor is bucketed, "
        "before their conversions (check timestamps of synthesized decisions)",
        "attribution"),
    "key_not_in_experiment": Cause(
        "event not a metric of the visitor's experiments",
        "add the event as a metric to the experiment in Optimizely, if it should count there",
        "attribution"),
    "duplicate": Cause(
        "duplicate (same entity_id, uuid and timestamp): stored once",
        "nothing to fix: Optimizely deduplicates replays by design",
        "attribution"),
    "dropped_by_optimizely": Cause(
        "accepted (2xx) but absent from the E3 export: silently dropped",
        "replay with strict mode (X-Optimizely-Strict: true) to see why the Event API drops them",
        "counting"),
    "outside_window": Cause(
        "event time outside the results window",
        "widen start_time / end_time of the results (results are computed on event time, not arrival)",
        "counting"),
    "processing_lag": Cause(
        "delivered less than 10 minutes before the results were read",
        "results may take up to 10 minutes to update: fetch the results again later",
        "counting"),
    "revenue_units": Cause(
        "revenue not in minor units",
        "send revenue as an integer in the lowest currency unit ($23.42 -> 2342): fix the blueprint's revenue rule",
        "counting"),
    "stale_datafile": Cause(
        "stale datafile: the replay used another revision",
        "check datafile_url is reachable and refreshed (toolkit doctor), then map and replay again",
        "run"),
    "visitor_inflation": Cause(
        "visitor count inflated by changing anonymous ids",
        "give visitors stable ids: identify users, and map with --identity stitched",
        "run"),
    "unexplained": Cause(
        "gap no diagnosis explains",
        "inspect these rows (reconciliation.csv) and the E3 export event by event; report if it persists",
        "unexplained"),
}


@dataclass(frozen=True)
class Diagnosis:
    code: str
    title: str
    count: int  # events (or visitors, see unit) it explains
    unit: str  # events | visitors | minor units
    examples: tuple[Any, ...]
    fix: str
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "title": self.title, "count": self.count, "unit": self.unit,
                "examples": list(self.examples), "fix": self.fix, "detail": self.detail}


@dataclass(frozen=True)
class Reconciliation:
    """``table``: one row per experiment x variation x event key x metric (TABLE_COLUMNS), worst gaps
    first; ``diagnoses``: causes with counts; ``arrivals``: with E3, one row per delivered event and
    whether Optimizely stored it."""

    table: pd.DataFrame = field(repr=False)
    diagnoses: tuple[Diagnosis, ...]
    arrivals: pd.DataFrame | None = field(default=None, repr=False)
    tolerance: Tolerance = Tolerance()
    run: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return bool((self.table["status"] == "ok").all())

    @property
    def unexplained(self) -> int:
        """Unexplained conversions (sum over total_conversions rows, absolute)."""
        t = self.table[self.table["metric"] == "total_conversions"]
        return int(t["unexplained"].abs().sum())

    def diagnosis(self, code: str) -> Diagnosis | None:
        return next((d for d in self.diagnoses if d.code == code), None)

    def summary(self) -> dict[str, Any]:
        counts = self.table["status"].value_counts()
        return {
            "rows": len(self.table),
            "status": {s: int(counts.get(s, 0)) for s in ("ok", "explained", "gap")},
            "unexplained_conversions": self.unexplained,
            "diagnoses": {d.code: d.count for d in self.diagnoses},
            "tolerance": {"abs": self.tolerance.abs, "rel": self.tolerance.rel},
        }

    def __repr__(self) -> str:
        s = self.summary()["status"]
        return (f"Reconciliation({len(self.table)} rows: {s['ok']} ok, {s['explained']} explained, {s['gap']} gap; "
                f"{len(self.diagnoses)} diagnoses)")
