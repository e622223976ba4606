"""The Results API JSON and the CSV export, in the shapes of facts section 7, from an
:class:`~toolkit.sandbox.attribution.Attribution`.

Per event attached to the experiment (the datafile's ``experimentIds``, datafile order) there are
three metrics: ``unique`` (scope visitor: converting visitors), ``count`` (scope event: total
conversions) and ``sum`` over ``revenue`` (scope visitor: minor units). ``results[vid].value`` is
the metric's number, ``samples`` the variation's visitors, ``rate`` = value / samples. The
baseline is the experiment's first variation. The sandbox computes no statistics: significance,
confidence intervals and lift are left empty.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

from ..datafile import Datafile, ExperimentInfo
from .attribution import Attribution, Tally

__all__ = ["experiment_event_ids", "results_json", "results_csv", "CSV_COLUMNS", "iso_ms", "csv_time"]

CSV_COLUMNS = [
    "Start time (UTC)", "End time (UTC)", "Variation Name", "Variation ID", "Is Baseline Variation",
    "Metric Event Name", "Metric Event ID", "Metric Numerator Type", "Metric Denominator Type",
    "Metric Winning Direction", "Numerator Value", "Denominator Value", "Metric Value",
    "Improvement Status from Baseline", "Improvement Value from Baseline", "Statistical Significance",
    "Is Improvement Significant", "Confidence Interval - Low", "Confidence Interval - High",
    "Samples Remaining to Significance",
]

# (aggregator, field, scope, CSV numerator type, Tally attribute)
_METRICS = (
    ("unique", None, "visitor", "unique conversions", "unique"),
    ("count", None, "event", "total conversions", "total"),
    ("sum", "revenue", "visitor", "revenue", "revenue"),
)


def experiment_event_ids(datafile: Datafile, experiment_id: str) -> list[tuple[str, str]]:
    """(event id, key) of the events attached to an experiment, in datafile order."""
    return [(e.id, e.key) for e in datafile.events.values() if experiment_id in e.experiment_ids]


def iso_ms(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def csv_time(ms: int | None) -> str:
    return "" if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _rate(value: float, samples: int) -> float:
    return value / samples if samples else 0.0


def _time_range(att: Attribution, start_ms: int | None, end_ms: int | None, now_ms: int) -> tuple[int | None, int]:
    return (start_ms if start_ms is not None else att.first_timestamp), (end_ms if end_ms is not None else now_ms)


def results_json(
    experiment: ExperimentInfo,
    datafile: Datafile,
    att: Attribution,
    *,
    start_ms: int | None = None,
    end_ms: int | None = None,
    now_ms: int,
) -> dict[str, Any]:
    """The Results API body (``GET /v2/experiments/{id}/results``)."""
    start, end = _time_range(att, start_ms, end_ms, now_ms)
    total = att.total_visitors
    baseline = experiment.variations[0].id if experiment.variations else None
    reach_vars = {}
    for v in experiment.variations:
        n = att.visitors.get(v.id, 0)
        reach_vars[v.id] = {"count": n, "name": v.key, "variation_id": v.id, "variation_reach": _rate(n, total)}
    metrics = []
    for event_id, key in experiment_event_ids(datafile, experiment.id):
        for aggregator, field, scope, _, attr in _METRICS:
            results = {}
            for v in experiment.variations:
                samples = att.visitors.get(v.id, 0)
                value = getattr(att.tally(v.id, event_id), attr)
                results[v.id] = {
                    "variation_id": v.id, "name": v.key, "is_baseline": v.id == baseline, "level": "variation",
                    "samples": samples, "value": value, "rate": _rate(value, samples),
                }
            metric: dict[str, Any] = {"event_id": int(event_id) if event_id.isdigit() else event_id,
                                      "name": key, "aggregator": aggregator, "scope": scope,
                                      "winning_direction": "increasing", "results": results}
            if field:
                metric["field"] = field
            metrics.append(metric)
    return {
        "experiment_id": int(experiment.id) if experiment.id.isdigit() else experiment.id,
        "start_time": iso_ms(start),
        "end_time": iso_ms(end),
        "confidence_threshold": 0.9,
        "reach": {
            "total_count": total,
            "baseline_count": att.visitors.get(baseline, 0) if baseline else 0,
            "treatment_count": total - (att.visitors.get(baseline, 0) if baseline else 0),
            "variations": reach_vars,
        },
        "metrics": metrics,
    }


def results_csv(
    experiment: ExperimentInfo,
    datafile: Datafile,
    att: Attribution,
    *,
    start_ms: int | None = None,
    end_ms: int | None = None,
    now_ms: int,
) -> str:
    """The results CSV export (``GET /v2/export/experiments/{id}/results/csv``)."""
    start, end = _time_range(att, start_ms, end_ms, now_ms)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    baseline = experiment.variations[0] if experiment.variations else None
    for event_id, key in experiment_event_ids(datafile, experiment.id):
        for _, _, _, numerator_type, attr in _METRICS:
            base_rate = 0.0
            if baseline is not None:
                base_rate = _rate(getattr(att.tally(baseline.id, event_id), attr), att.visitors.get(baseline.id, 0))
            for v in experiment.variations:
                tally: Tally = att.tally(v.id, event_id)
                samples = att.visitors.get(v.id, 0)
                value = getattr(tally, attr)
                rate = _rate(value, samples)
                is_base = baseline is not None and v.id == baseline.id
                improvement = "" if is_base or not base_rate else f"{(rate - base_rate) / base_rate:.6f}"
                writer.writerow([
                    csv_time(start), csv_time(end), v.key, v.id, "true" if is_base else "false",
                    key, event_id, numerator_type, "visitors", "increasing",
                    value, samples, f"{rate:.6f}",
                    "" if is_base else "inconclusive", improvement, "", "false", "", "", "",
                ])
    return buf.getvalue()
