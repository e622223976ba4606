"""Expectation suites over the mapped events (Great Expectations): keys, revenue, identity and time.

    report = run_suites(events, quarantine, datafile, settings=ValidationSettings(...))
    print(report); report.write("reports/run-1")     # validation.json + data_docs/

Great Expectations is imported only when suites are loaded or run (it takes seconds).
"""

from __future__ import annotations

from .frame import COLUMNS, build_validation_frame
from .report import ExpectationOutcome, ValidationReport
from .runner import run_suites, validate_frame
from .settings import CONDITIONS, PARAMETERS, ValidationSettings, suite_parameters
from .suites import ExpectationSpec, SuiteSpec, default_suites_dir, load_suite, load_suites

__all__ = [
    "run_suites",
    "validate_frame",
    "load_suites",
    "load_suite",
    "default_suites_dir",
    "build_validation_frame",
    "suite_parameters",
    "ValidationSettings",
    "ValidationReport",
    "ExpectationOutcome",
    "ExpectationSpec",
    "SuiteSpec",
    "COLUMNS",
    "PARAMETERS",
    "CONDITIONS",
]
