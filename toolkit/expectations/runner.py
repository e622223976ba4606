"""Run the suites over the validation frame with Great Expectations and collect every outcome."""

from __future__ import annotations

import logging
import os
from typing import Any

import pandas as pd

from ..datafile import Datafile
from ..errors import SuiteError
from .frame import build_validation_frame
from .report import ExpectationOutcome, ValidationReport
from .settings import ValidationSettings, suite_parameters
from .suites import ExpectationSpec, SuiteSpec, load_suites

__all__ = ["run_suites", "validate_frame"]

log = logging.getLogger(__name__)
_ID_COLUMNS = ["source_row", "source_event_id", "kind", "key", "visitor_id", "detail"]


def run_suites(
    events: pd.DataFrame,
    quarantine: pd.DataFrame,
    datafile: Datafile,
    *,
    suites_dir: str | os.PathLike[str] | None = None,
    settings: ValidationSettings | None = None,
    suites: list[SuiteSpec] | None = None,
) -> ValidationReport:
    """Check mapped ``events`` (EVENTS) and ``quarantine`` (QUARANTINE) against the suites.

    Suites come from ``suites`` or are loaded (and checked) from ``suites_dir`` (default
    ``data/expectations``). Every expectation runs (failures are collected, never the first
    only); ``report.success`` is False when an ``error``-severity expectation fails.
    """
    settings = settings or ValidationSettings()
    suites = suites if suites is not None else load_suites(suites_dir, parameters=settings.extra)
    frame = build_validation_frame(events, quarantine, datafile)
    params = suite_parameters(datafile, settings)
    return validate_frame(frame, suites, params, settings)


def _result_dict(result: Any) -> dict[str, Any]:
    return dict(result.result or {})


def _examples(frame: pd.DataFrame, spec: ExpectationSpec, result: dict[str, Any], limit: int) -> list[dict]:
    idx = [i for i in (result.get("partial_unexpected_index_list") or []) if isinstance(i, int | float)][:limit]
    if not idx:
        return []
    cols = list(dict.fromkeys(_ID_COLUMNS + spec.columns))
    rows = frame.loc[[int(i) for i in idx], cols]
    return [{k: (None if pd.isna(v) else v.item() if hasattr(v, "item") else v) for k, v in rec.items()}
            for rec in rows.to_dict("records")]


def _outcome(frame: pd.DataFrame, spec: ExpectationSpec, result: Any, limit: int) -> ExpectationOutcome:
    info = result.exception_info or {}
    if info.get("raised_exception"):
        msg = " ".join(str(info.get("exception_message") or "").split())[:300]
        raise SuiteError(f"suite {spec.suite}, expectation {spec.index} ({spec.type}) failed to run: {msg}; "
                         "fix its kwargs (row_condition, columns)")
    res = _result_dict(result)
    pct = res.get("unexpected_percent")
    return ExpectationOutcome(
        suite=spec.suite, index=spec.index, type=spec.type, columns=tuple(spec.columns),
        description=spec.description, severity=spec.severity,
        status="passed" if result.success else "failed",
        element_count=int(res.get("element_count") or 0) - int(res.get("missing_count") or 0),
        unexpected_count=int(res["unexpected_count"]) if res.get("unexpected_count") is not None else None,
        share=float(pct) / 100.0 if pct is not None else None,
        observed=res.get("observed_value"),
        examples=_examples(frame, spec, res, limit),
    )


def validate_frame(
    frame: pd.DataFrame, suites: list[SuiteSpec], params: dict[str, Any], settings: ValidationSettings
) -> ValidationReport:
    """Run ``suites`` over an already built validation frame (see :func:`run_suites`)."""
    import great_expectations as gx

    from ._gx import build_gx_suite, gx_quiet_warnings, quiet_context

    context = quiet_context()
    batch_def = context.data_sources.add_pandas("toolkit").add_dataframe_asset("validation_frame") \
        .add_batch_definition_whole_dataframe("all_rows")
    outcomes: list[ExpectationOutcome] = []
    gx_results: list[Any] = []
    result_format = {"result_format": "SUMMARY", "partial_unexpected_count": max(settings.examples, 1)}
    with gx_quiet_warnings():
        for suite in suites:
            active = [e for e in suite.expectations if e.when is None or settings.condition(e.when)]
            skipped = [e for e in suite.expectations if e not in active]
            outcomes.extend(ExpectationOutcome.skipped(e) for e in skipped)
            if not active:
                continue
            gx_suite = context.suites.add(build_gx_suite(suite.name, [e.as_dict() for e in active],
                                                         where=f"suite file {suite.path}"))
            vd = context.validation_definitions.add(gx.ValidationDefinition(name=suite.name, data=batch_def,
                                                                            suite=gx_suite))
            log.debug("running suite %s (%d expectations, %d skipped) on %d rows", suite.name, len(active),
                      len(skipped), len(frame))
            # GX filters the whole batch frame per metric: give it only the columns this suite reads
            # (examples are looked up in the full frame by index label afterwards).
            columns = list(dict.fromkeys(c for e in active for c in e.columns))
            result = vd.run(batch_parameters={"dataframe": frame[columns]}, expectation_parameters=params,
                            result_format=result_format)
            gx_results.append(result)
            by_id = {e.id: spec for e, spec in zip(gx_suite.expectations, active, strict=True)}
            for r in result.results:
                spec = by_id[r.expectation_config.id]
                outcomes.append(_outcome(frame, spec, r, settings.examples))
    order = {(s.name, e.index): n for n, (s, e) in enumerate((s, e) for s in suites for e in s.expectations)}
    outcomes.sort(key=lambda o: order[(o.suite, o.index)])
    counts = frame["origin"].value_counts().to_dict() if len(frame) else {}
    return ValidationReport(
        outcomes=outcomes,
        rows={"frame": len(frame), "events": int(counts.get("event", 0)),
              "quarantined": int(counts.get("quarantine", 0))},
        parameters={k: v for k, v in params.items() if not isinstance(v, list)},
        gx_results=gx_results,
    )
