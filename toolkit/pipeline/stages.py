"""Stage glue for the notebooks: each function runs one stage from the run settings, writes the
stage's files into the run folder and returns what the notebook shows.

Notebooks stay thin: they call ``open_run`` then one of these, display the result, and call
``record_stage``. Without a ``settings_path`` (an analyst opening a notebook by hand, nbval) the
defaults are the bundled sample against a sandbox that the stage starts itself on a data folder
inside the run folder, so 03 and 04 see the same sandbox state.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import IntegrationConfig, load_integration
from ..datafile import Datafile, load_datafile
from .settings import RunSettings

__all__ = ["StageContext", "open_run", "default_settings", "default_run_dir", "notebook_logging", "run_map",
           "run_validate", "run_replay", "run_reconcile", "sandbox_for"]

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample"
SANDBOX = "sandbox"  # endpoint / results value meaning "the local sandbox on sandbox_data"
RUN_DIR_ENV = "TOOLKIT_NOTEBOOK_RUN_DIR"  # where notebooks opened without parameters write (tests: a tmp dir)


def default_run_dir() -> Path:
    """The run folder of a notebook opened without parameters: reports/notebooks, or $TOOLKIT_NOTEBOOK_RUN_DIR."""
    return Path(os.environ.get(RUN_DIR_ENV) or REPO / "reports" / "notebooks").resolve()


class _StderrHandler(logging.StreamHandler):
    """Writes to the *current* ``sys.stderr`` (a kernel or a test may swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def notebook_logging(*secrets) -> logging.Handler | None:
    """Warnings of the toolkit's loggers in a notebook: one redacting handler on stderr.

    In a kernel nobody configures logging, so Python's last-resort handler would print the toolkit's
    warnings unredacted. Unless logging is configured already (the CLI, pytest), this adds one handler
    (found again by its marker) and each call adds ``secrets`` to its filter.
    """
    from ..logs import Redactor

    logger = logging.getLogger("toolkit")
    handler = next((h for h in logger.handlers if getattr(h, "_toolkit_notebook", None)), None)
    if handler is None:
        if logger.handlers or logging.getLogger().handlers:
            return None  # configured by someone else: their handlers, their redaction
        redactor = Redactor()
        handler = _StderrHandler(sys.stderr)
        handler.setLevel(logging.WARNING)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handler.addFilter(redactor.filter)
        handler._toolkit_notebook = redactor  # type: ignore[attr-defined]
        logger.addHandler(handler)
    handler._toolkit_notebook.add(*secrets)  # type: ignore[attr-defined]
    return handler


def default_settings(run_dir: Path) -> RunSettings:
    """The bundled sample, replayed to a local sandbox: what a notebook runs with no parameters."""
    return RunSettings(
        config=str(SAMPLE / "config.json"), export=str(SAMPLE / "export.jsonl"),
        datafile=str(SAMPLE / "datafile.json"), endpoint=SANDBOX, results=SANDBOX,
        sandbox_data=str(run_dir / "sandbox"), out=str(run_dir.parent), run_id=run_dir.name,
    )


@dataclass
class StageContext:
    settings: RunSettings
    run_dir: Path
    notes: list[str] = field(default_factory=list)

    @cached_property
    def config(self) -> IntegrationConfig:
        from ..secrets import resolve_secret

        s = self.settings
        config = load_integration(s.config, secrets_file=s.secrets_file or None, sdk_key_env=s.sdk_key_env or None)
        token = resolve_secret(s.token_env, secrets_file=s.secrets_file or None) if s.token_env else None
        notebook_logging(config.sdk_key, token)  # from here on, log records are cleaned of both
        return config

    @cached_property
    def datafile(self) -> Datafile:
        # "{sdk_key}" in the setting is filled in here, so the key never becomes a parameter.
        source = self.settings.datafile.replace("{sdk_key}", self.config.sdk_key.reveal()) or None
        return load_datafile(source, config=self.config, cache_dir=self.run_dir / ".cache")

    def path(self, name: str) -> Path:
        return self.run_dir / name

    @property
    def events_path(self) -> Path:
        return self.path("events.jsonl")

    @property
    def quarantine_path(self) -> Path:
        return self.path("quarantine.jsonl")

    @property
    def ledger_path(self) -> Path:
        return self.path("ledger.sqlite")

    def write_json(self, name: str, data: Any) -> Path:
        p = self.path(name)
        p.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
        return p

    def read_json(self, name: str) -> Any:
        return json.loads(self.path(name).read_text())


def open_run(settings_path: str = "", run_dir: str = "") -> StageContext:
    """The notebook's entry: settings from ``toolkit run`` (a JSON file) or the sample defaults."""
    notebook_logging()
    rd = Path(run_dir).resolve() if run_dir else default_run_dir()
    rd.mkdir(parents=True, exist_ok=True)
    if settings_path:
        settings = RunSettings(**json.loads(Path(settings_path).read_text()))
    else:
        settings = default_settings(rd)
    return StageContext(settings=settings, run_dir=rd)


# --------------------------------------------------------------------------------------- map


@dataclass
class MapStage:
    summary: Any  # toolkit.mapping.MapSummary
    events: pd.DataFrame
    quarantine: pd.DataFrame
    profile: Any  # toolkit.pipeline.views.ExportProfile


def run_map(ctx: StageContext, *, progress: bool = True) -> MapStage:
    from ..blueprint import load_blueprint
    from ..mapping import map_export
    from .views import profile_export

    s = ctx.settings
    blueprint = load_blueprint(s.blueprint) if s.blueprint else None
    out = map_export(s.export, ctx.datafile, blueprint=blueprint, identity=s.identity, decisions=s.decisions,
                     fmt=s.format or None, progress=progress, events_out=ctx.events_path,
                     quarantine_out=ctx.quarantine_path)
    ctx.write_json("map_summary.json", out.summary.to_dict())
    profile = profile_export(s.export, fmt=s.format or None)
    return MapStage(summary=out.summary, events=out.events, quarantine=out.quarantine, profile=profile)


# --------------------------------------------------------------------------------------- validate


def run_validate(ctx: StageContext):
    from ..blueprint import load_blueprint
    from ..contracts import QUARANTINE, empty
    from ..events_io import read_events_jsonl, read_quarantine_jsonl
    from ..expectations import ValidationSettings, load_suites, run_suites

    s = ctx.settings
    suites = load_suites(s.suites or None)
    events = read_events_jsonl(ctx.events_path)
    quarantine = read_quarantine_jsonl(ctx.quarantine_path) if ctx.quarantine_path.exists() else empty(QUARANTINE)
    blueprint = load_blueprint(s.blueprint or None)
    settings = ValidationSettings(allow_refunds=bool(blueprint.allow_refunds), decisions_expected=s.decisions != "none")
    report = run_suites(events, quarantine, ctx.datafile, suites=suites, settings=settings)
    report.write(ctx.path("validation"))
    return report


# --------------------------------------------------------------------------------------- sandbox


def sandbox_for(ctx: StageContext):
    """A Sandbox on the run's sandbox folder, serving this run's datafile (not started)."""
    from ..sandbox import Sandbox

    data = Path(ctx.settings.sandbox_data or ctx.path("sandbox"))
    return Sandbox(data, datafile=ctx.datafile, sdk_key=ctx.config.sdk_key.reveal())


# --------------------------------------------------------------------------------------- replay


def _set_aside(ledger: Path) -> None:
    """Re-running stage 03 in the same folder starts a new ledger; the old one is kept aside."""
    if not ledger.exists():
        return
    stamp = int(ledger.stat().st_mtime)
    for suffix in ("", "-wal", "-shm"):
        old = Path(str(ledger) + suffix)
        if old.exists():
            old.rename(ledger.with_name(f"{ledger.stem}.{stamp}{ledger.suffix}{suffix}"))
    log.info("an earlier ledger in %s was kept as %s.%s%s", ledger.parent, ledger.stem, stamp, ledger.suffix)


@dataclass
class ReplayStage:
    report: Any  # toolkit.delivery.DeliveryReport
    ledger: Any  # toolkit.ledger.LedgerFrames
    endpoint: str


def run_replay(ctx: StageContext, *, progress: bool = True) -> ReplayStage:
    from ..events_io import read_events_jsonl
    from ..ledger import read_ledger
    from ..replay import replay

    s = ctx.settings
    events = read_events_jsonl(ctx.events_path)
    _set_aside(ctx.ledger_path)
    sandbox = sandbox_for(ctx).start() if s.endpoint == SANDBOX else None
    try:
        endpoint = sandbox.events_url if sandbox else (s.endpoint or ctx.config.event_endpoint)
        outcome = replay(events, config=ctx.config, datafile=ctx.datafile, ledger=ctx.ledger_path,
                         endpoint=endpoint, strict=s.strict, dry_run=s.dry_run, concurrency=s.concurrency,
                         max_rps=s.max_rps or None, progress=progress,
                         run_info={"input": str(ctx.events_path), "decisions": s.decisions, "identity": s.identity})
    finally:
        if sandbox:
            sandbox.stop()
    return ReplayStage(report=outcome.report, ledger=read_ledger(ctx.ledger_path),
                       endpoint="local sandbox" if sandbox else endpoint)


# --------------------------------------------------------------------------------------- reconcile


def run_reconcile(ctx: StageContext):
    from ..events_io import read_quarantine_jsonl
    from ..ledger import read_ledger
    from ..reconcile import Tolerance, reconcile, write_outputs
    from ..results import load_results

    s = ctx.settings
    ledger = read_ledger(ctx.ledger_path)
    experiments = [e.id for e in ctx.datafile.running_experiments()]
    quarantine = read_quarantine_jsonl(ctx.quarantine_path) if ctx.quarantine_path.exists() else None
    mapping = ctx.read_json("map_summary.json") if ctx.path("map_summary.json").exists() else None
    sandbox = sandbox_for(ctx).start() if s.results == SANDBOX else None
    try:
        source = sandbox.url + "/v2/experiments/{experiment_id}/results" if sandbox else s.results
        results = load_results(source, fmt=s.results_format or None, token_env=s.token_env,
                               experiment_ids=experiments, datafile=ctx.datafile)
    finally:
        if sandbox:
            sandbox.stop()
    rec = reconcile(ledger, results, ctx.datafile, tolerance=Tolerance.parse(s.tolerance), mapping=mapping,
                    quarantine=quarantine)
    write_outputs(rec, ctx.path("reconcile"))
    return rec
