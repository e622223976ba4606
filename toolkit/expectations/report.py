"""The outcome of a validation run: a summary for terminals and notebooks, the full result as
JSON, and Great Expectations' Data Docs HTML (rendered offline from the results)."""

from __future__ import annotations

import html
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import ExportError

__all__ = ["ExpectationOutcome", "ValidationReport"]


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's result. ``share``: failing share of the rows it looked at (GX's
    unexpected_percent / 100, non-null rows of its domain); ``examples``: a few failing rows."""

    suite: str
    index: int
    type: str
    columns: tuple[str, ...]
    description: str
    severity: str  # error | warning
    status: str  # passed | failed | skipped
    element_count: int = 0  # rows it looked at: its domain minus the nulls it ignores
    unexpected_count: int | None = None
    share: float | None = None
    observed: Any = None
    examples: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def skipped(cls, spec: Any) -> ExpectationOutcome:
        return cls(suite=spec.suite, index=spec.index, type=spec.type, columns=tuple(spec.columns),
                   description=spec.description, severity=spec.severity, status="skipped")

    @property
    def label(self) -> str:
        return f"{self.suite}#{self.index} {self.type}({', '.join(self.columns)})"

    @property
    def failed(self) -> bool:
        return self.status == "failed"


def _share_text(o: ExpectationOutcome) -> str:
    if o.status == "skipped":
        return "-"
    if o.unexpected_count is None:
        return f"observed {o.observed}"
    share = f"{o.share:.2%}" if o.share is not None else "-"
    return f"{o.unexpected_count}/{o.element_count} ({share})"


@dataclass
class ValidationReport:
    outcomes: list[ExpectationOutcome]
    rows: dict[str, int]
    parameters: dict[str, Any]
    gx_results: list[Any] = field(default_factory=list, repr=False)  # GX ExpectationSuiteValidationResult

    # ---- verdict
    @property
    def success(self) -> bool:
        """False when any ``error``-severity expectation failed (warnings never fail a run)."""
        return not any(o.failed and o.severity == "error" for o in self.outcomes)

    @property
    def exit_code(self) -> int:
        return 0 if self.success else 1

    def count(self, status: str, severity: str | None = None) -> int:
        return sum(1 for o in self.outcomes if o.status == status and (severity is None or o.severity == severity))

    # ---- frames
    def summary_frame(self) -> pd.DataFrame:
        """One row per expectation: suite, expectation, severity, status, failing count and share."""
        return pd.DataFrame({
            "suite": [o.suite for o in self.outcomes],
            "expectation": [f"{o.type}({', '.join(o.columns)})" for o in self.outcomes],
            "description": [o.description for o in self.outcomes],
            "severity": [o.severity for o in self.outcomes],
            "status": [o.status for o in self.outcomes],
            "failing": pd.array([o.unexpected_count for o in self.outcomes], dtype="Int64"),
            "checked": pd.array([o.element_count if o.status != "skipped" else None for o in self.outcomes],
                                dtype="Int64"),
            "share": pd.array([o.share for o in self.outcomes], dtype="Float64"),
        })

    @property
    def failing_rows(self) -> pd.DataFrame:
        """The example failing rows of every failed expectation (source_row, source_event_id, ...)."""
        recs = [{"suite": o.suite, "expectation": o.label, "severity": o.severity, **ex}
                for o in self.outcomes if o.failed for ex in o.examples]
        return pd.DataFrame.from_records(recs) if recs else pd.DataFrame(
            columns=["suite", "expectation", "severity", "source_row", "source_event_id"])

    # ---- text
    def lines(self, *, examples: int = 3) -> list[str]:
        """The summary a person reads in a terminal."""
        out = [f"validated {self.rows.get('frame', 0)} rows ({self.rows.get('events', 0)} events, "
               f"{self.rows.get('quarantined', 0)} quarantined)"]
        for o in self.outcomes:
            mark = {"passed": "ok  ", "failed": "FAIL" if o.severity == "error" else "WARN", "skipped": "skip"}[o.status]
            out.append(f"{mark} [{o.severity:<7}] {o.label}: {_share_text(o)}")
            out.append(f"       {o.description}")
            for ex in o.examples[:examples] if o.failed else []:
                cells = ", ".join(f"{k}={v}" for k, v in ex.items() if v is not None)
                out.append(f"       e.g. {cells}")
        errors, warnings = self.count("failed", "error"), self.count("failed", "warning")
        verdict = "PASSED" if self.success else "FAILED"
        out.append(f"{verdict}: {self.count('passed')} passed, {errors} error(s), {warnings} warning(s), "
                   f"{self.count('skipped')} skipped")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def _repr_html_(self) -> str:
        verdict = "PASSED" if self.success else "FAILED"
        table = self.summary_frame().to_html(index=False, na_rep="-", float_format=lambda x: f"{x:.2%}")
        rows = self.failing_rows
        examples = rows.to_html(index=False, na_rep="-") if len(rows) else "<p>no failing rows</p>"
        return f"<h4>validation {html.escape(verdict)}</h4>{table}<h5>failing rows (examples)</h5>{examples}"

    # ---- files
    def to_dict(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "rows": self.rows,
            "parameters": self.parameters,
            "expectations": [dict(asdict(o), label=o.label, columns=list(o.columns)) for o in self.outcomes],
            "great_expectations": [r.to_json_dict() for r in self.gx_results],
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        """The full result (ours and Great Expectations' validation results) as JSON text."""
        return json.dumps(self.to_dict(), indent=indent, default=_json_default)

    def write(self, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
        """Write ``validation.json`` and ``data_docs/`` (index.html + one page per suite) under out_dir."""
        out = Path(out_dir)
        docs = out / "data_docs"
        try:
            docs.mkdir(parents=True, exist_ok=True)
            paths = {"validation": out / "validation.json", "data_docs": docs / "index.html"}
            paths["validation"].write_text(self.to_json(), encoding="utf-8")
            pages = _write_data_docs(self.gx_results, docs)
            paths["data_docs"].write_text(self._index_html(pages), encoding="utf-8")
        except OSError as exc:
            raise ExportError(f"output folder {out}: cannot write it ({exc.strerror}); choose another --out") from None
        return paths

    def _index_html(self, pages: dict[str, str]) -> str:
        links = "".join(f'<li><a href="{html.escape(f)}">{html.escape(n)}</a></li>' for n, f in pages.items())
        return (f"<!doctype html><meta charset='utf-8'><title>validation</title>"
                f"<h2>Expectation suites</h2>{self._repr_html_()}<h3>Great Expectations Data Docs</h3><ul>{links}</ul>")


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if value is pd.NA or value is pd.NaT:
        return None
    return str(value)


def _write_data_docs(results: list[Any], docs: Path) -> dict[str, str]:
    """Render each suite's validation result with GX's own renderers (no network needed to write)."""
    if not results:
        return {}
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    from ._gx import gx_quiet_warnings

    renderer, view = ValidationResultsPageRenderer(), DefaultJinjaPageView()
    pages: dict[str, str] = {}
    with gx_quiet_warnings():
        for res in results:
            name = res.suite_name
            fname = f"{name}.html"
            (docs / fname).write_text(offline_html(view.render(renderer.render(res))), encoding="utf-8")
            pages[name] = fname
    return pages


_REMOTE_TAGS = re.compile(
    r"<script\b[^>]*\bsrc=[\"']https?://[^>]*>\s*</script>|<link\b[^>]*\bhref=[\"']https?://[^>]*>",
    re.IGNORECASE,
)


def offline_html(page: str) -> str:
    """Drop the stylesheets and scripts GX's templates load from CDNs: Data Docs are opened offline
    (and mailed around); they render unstyled but complete, and never reach out to the network."""
    return _REMOTE_TAGS.sub("", page)
