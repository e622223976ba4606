"""Load and check the expectation suite files (``data/expectations/*.json``).

A suite file is Great Expectations' own suite JSON (``name``, ``meta``, ``expectations`` of
``type`` / ``kwargs`` / ``meta``) with two requirements of ours on each expectation's ``meta``:
``severity`` (``error`` fails the run, ``warning`` is reported only) and ``description`` (what a
person reads in the summary); optionally ``when`` (a run condition, see
:data:`~toolkit.expectations.settings.CONDITIONS`). Everything is checked at load: JSON, fields,
columns against the validation frame, ``$PARAMETER`` names, and that Great Expectations builds
every expectation (it would silently drop an unknown type). Any problem is one
:class:`~toolkit.errors.SuiteError` line naming the file and the expectation.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SuiteError
from .frame import COLUMNS
from .settings import CONDITIONS, PARAMETERS

__all__ = ["ExpectationSpec", "SuiteSpec", "load_suites", "load_suite", "default_suites_dir"]

SEVERITIES = ("error", "warning")
_COLUMN_KWARGS = ("column", "column_A", "column_B")


def default_suites_dir() -> Path:
    """``data/expectations`` of the repository (override with ``TOOLKIT_SUITES_DIR``)."""
    env = os.environ.get("TOOLKIT_SUITES_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "data" / "expectations"


@dataclass(frozen=True)
class ExpectationSpec:
    """One expectation of a suite file, as written (1-based ``index`` in the file)."""

    suite: str
    index: int
    type: str
    kwargs: dict[str, Any]
    meta: dict[str, Any]

    @property
    def severity(self) -> str:
        return self.meta["severity"]

    @property
    def description(self) -> str:
        return self.meta["description"]

    @property
    def when(self) -> str | None:
        return self.meta.get("when")

    @property
    def columns(self) -> list[str]:
        cols = [self.kwargs[k] for k in _COLUMN_KWARGS if k in self.kwargs]
        return cols + list(self.kwargs.get("column_list") or [])

    @property
    def label(self) -> str:
        """``suite#index type(columns)``: the name a person sees for this expectation."""
        return f"{self.suite}#{self.index} {self.type}({', '.join(self.columns)})"

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "kwargs": self.kwargs, "meta": self.meta}


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    path: str
    description: str
    expectations: tuple[ExpectationSpec, ...]


def _parameters_in(value: Any) -> list[str]:
    if isinstance(value, dict):
        if "$PARAMETER" in value:
            return [str(value["$PARAMETER"])]
        return [p for v in value.values() for p in _parameters_in(v)]
    if isinstance(value, list):
        return [p for v in value for p in _parameters_in(v)]
    return []


def _check_expectation(where: str, i: int, exp: Any, parameters: set[str]) -> None:
    at = f"{where}: expectation {i}"
    if not isinstance(exp, dict):
        raise SuiteError(f"{at} is not an object; write {{\"type\": ..., \"kwargs\": {{...}}, \"meta\": {{...}}}}")
    if not isinstance(exp.get("type"), str) or not exp["type"]:
        raise SuiteError(f"{at} has no \"type\"; name a Great Expectations expectation type")
    kwargs, meta = exp.get("kwargs", {}), exp.get("meta")
    if not isinstance(kwargs, dict):
        raise SuiteError(f"{at} ({exp['type']}): \"kwargs\" must be an object")
    if not isinstance(meta, dict):
        raise SuiteError(f"{at} ({exp['type']}) has no \"meta\"; add {{\"severity\": \"error\"|\"warning\", "
                         "\"description\": \"...\"}")
    if meta.get("severity") not in SEVERITIES:
        found = f"severity {meta['severity']!r}" if "severity" in meta else "no severity"
        raise SuiteError(f"{at} ({exp['type']}) has {found}; set meta.severity to \"error\" or \"warning\"")
    if not isinstance(meta.get("description"), str) or not meta["description"].strip():
        raise SuiteError(f"{at} ({exp['type']}) has no description; set meta.description to what it checks")
    if "when" in meta and meta["when"] not in CONDITIONS:
        raise SuiteError(f"{at} ({exp['type']}): unknown meta.when {meta['when']!r}; use one of "
                         + ", ".join(repr(c) for c in CONDITIONS))
    spec = ExpectationSpec("", i, exp["type"], kwargs, meta)
    for col in spec.columns:
        if col not in COLUMNS:
            raise SuiteError(f"{at} ({exp['type']}): column {col!r} is not in the validation frame; use one of "
                             + ", ".join(COLUMNS))
    for name in _parameters_in(kwargs):
        if name not in parameters:
            raise SuiteError(f"{at} ({exp['type']}): unknown $PARAMETER {name!r}; use one of "
                             + ", ".join(sorted(parameters)))


def load_suite(path: str | os.PathLike[str], *, parameters: Iterable[str] = ()) -> SuiteSpec:
    """Read and check one suite file (see the module doc); ``parameters``: extra known names."""
    from ._gx import build_gx_suite

    p = Path(path)
    where = f"suite file {p}"
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SuiteError(f"{where}: cannot read it ({exc.strerror})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SuiteError(f"{where}: not JSON (line {exc.lineno} column {exc.colno}: {exc.msg}); fix the file") from None
    if not isinstance(data, dict) or not isinstance(data.get("expectations"), list):
        raise SuiteError(f"{where}: a suite is an object with \"name\" and a list \"expectations\"")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise SuiteError(f"{where}: no \"name\"; give the suite a name")
    if not data["expectations"]:
        raise SuiteError(f"{where}: holds no expectations; add some or remove the file")
    known = set(PARAMETERS) | set(parameters)
    for i, exp in enumerate(data["expectations"], 1):
        _check_expectation(where, i, exp, known)
    build_gx_suite(name, data["expectations"], where=where)  # GX builds each one; count checked
    meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
    specs = tuple(ExpectationSpec(name, i, e["type"], e.get("kwargs", {}), e["meta"])
                  for i, e in enumerate(data["expectations"], 1))
    return SuiteSpec(name=name, path=str(p), description=str(meta.get("description", "")), expectations=specs)


def load_suites(suites_dir: str | os.PathLike[str] | None = None, *, parameters: Iterable[str] = ()) -> list[SuiteSpec]:
    """Every ``*.json`` suite in ``suites_dir`` (default :func:`default_suites_dir`), in name order."""
    d = Path(suites_dir) if suites_dir is not None else default_suites_dir()
    if not d.is_dir():
        raise SuiteError(f"suites folder {d}: not a folder; pass --suites DIR holding the suite JSON files")
    files = sorted(d.glob("*.json"))
    if not files:
        raise SuiteError(f"suites folder {d}: no *.json suite files in it")
    suites = [load_suite(f, parameters=parameters) for f in files]
    seen: dict[str, str] = {}
    for s in suites:
        if s.name in seen:
            raise SuiteError(f"suite file {s.path}: name {s.name!r} is also used by {seen[s.name]}; names must differ")
        seen[s.name] = s.path
    return suites
