"""The one place that talks to Great Expectations' context: imported lazily (GX takes ~3 s to
import), with progress bars and usage statistics off, in memory only (nothing written to disk)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

__all__ = ["quiet_context", "build_gx_suite", "gx_quiet_warnings", "SEVERITY_TO_GX"]

# Our severities -> GX 1.x's own expectation severity (shown in Data Docs).
SEVERITY_TO_GX = {"error": "critical", "warning": "warning"}


@contextlib.contextmanager
def gx_quiet_warnings() -> Iterator[None]:
    """GX >= 1.9 warns that string row conditions are deprecated (removed in 2.0, which we do not
    allow: great-expectations<2). The suite files keep the readable string form; the warning is muted."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*(condition_parser|row_condition).*deprecated",
                                category=DeprecationWarning)
        yield


def quiet_context() -> Any:
    """An ephemeral GX context: no telemetry, no progress bars, no files."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    from . import custom  # noqa: F401  (registers the custom expectation types)

    config = DataContextConfig(
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def build_gx_suite(name: str, expectations: list[dict[str, Any]], *, where: str) -> Any:
    """A GX ExpectationSuite holding exactly ``expectations`` (dicts with type/kwargs/meta).

    GX may drop an expectation it cannot build with only a log line; here every one is built on
    its own and the count is checked, so a broken or unknown one is a :class:`SuiteError` naming
    ``where`` and the type.
    """
    from great_expectations.core.expectation_suite import ExpectationSuite

    from ..errors import SuiteError
    from . import custom  # noqa: F401

    suite = ExpectationSuite(name=name)
    with gx_quiet_warnings():
        _add_all(suite, expectations, where)
    if len(suite.expectations) != len(expectations):
        raise SuiteError(f"{where}: Great Expectations kept {len(suite.expectations)} of {len(expectations)} "
                         "expectations (it drops unknown types and keeps one expectation per type and column); "
                         "fix the suite file")
    return suite


def _add_all(suite: Any, expectations: list[dict[str, Any]], where: str) -> None:
    from great_expectations.exceptions import ExpectationNotFoundError
    from great_expectations.expectations.registry import get_expectation_impl

    from ..errors import SuiteError

    for i, exp in enumerate(expectations, 1):
        try:
            get_expectation_impl(exp["type"])
        except ExpectationNotFoundError:
            raise SuiteError(f"{where}: expectation {i} has unknown type {exp['type']!r}; use a Great Expectations "
                             "type or one of toolkit.expectations.custom.CUSTOM_TYPES") from None
        try:
            suite.add_expectation_configuration(_configuration(exp))
        except Exception as exc:  # GX raises a handful of its own types (and pydantic's) for bad kwargs
            raise SuiteError(f"{where}: expectation {i} ({exp['type']}) cannot be built by Great "
                             f"Expectations: {_one_line(exc)}; fix its kwargs") from None


def _one_line(exc: Exception) -> str:
    cause = exc.__cause__ or exc
    errors = getattr(cause, "errors", None)
    if callable(errors):  # pydantic: name each bad field
        try:
            return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors())
        except Exception:  # noqa: BLE001 - fall back to the text
            pass
    text = " ".join(str(cause).split())
    return text[:300] or type(cause).__name__


def _configuration(exp: dict[str, Any]) -> Any:
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    return ExpectationConfiguration(
        type=exp["type"], kwargs=dict(exp["kwargs"]), meta=dict(exp.get("meta") or {}),
        severity=SEVERITY_TO_GX.get((exp.get("meta") or {}).get("severity", "error"), "critical"),
    )
