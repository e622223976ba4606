"""Execute the stage notebooks with papermill into ``<out>/<run-id>/`` and collect their outcome.

Each notebook records its outcome with :func:`record_stage` (``stage_<name>.json`` in the run
folder); this module turns those into ``summary.json``, the HTML report and an exit code:
0 all good, 1 a stage found problems (failed expectations, undelivered events, gaps), 2 unusable
input or a notebook that failed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import errors as _errors
from .report import render_notebook_html, write_index
from .settings import RunSettings

__all__ = ["STAGES", "PipelineResult", "run_pipeline", "record_stage", "notebooks_dir"]

log = logging.getLogger(__name__)

STAGES: tuple[str, ...] = ("01_load_export", "02_validate_rules", "03_replay", "04_reconcile")


def notebooks_dir() -> Path:
    """The repository's notebooks folder (the package is installed in editable mode)."""
    env = os.environ.get("TOOLKIT_NOTEBOOKS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "notebooks"


def record_stage(run_dir: str | Path, name: str, *, exit_code: int, headline: str, **details: Any) -> dict:
    """Called by each notebook at its end: what the stage concluded, for summary.json."""
    status = {0: "ok", 1: "problems"}.get(exit_code, "error")
    reserved = {"stage", "exit_code", "status", "headline", "seconds", "html"} & set(details)
    if reserved:
        raise ValueError(f"record_stage: {', '.join(sorted(reserved))} are reserved names")
    record = {"stage": name, "exit_code": exit_code, "status": status, "headline": headline, **details}
    Path(run_dir, f"stage_{name}.json").write_text(json.dumps(record, indent=2, sort_keys=True, default=str))
    return record


@dataclass(frozen=True)
class PipelineResult:
    run_dir: Path
    summary: dict[str, Any]
    exit_code: int
    report: Path


@contextmanager
def _local_kernel_config():
    """Kernels talk to papermill over Unix sockets in a private folder, not loopback TCP: nothing
    else on the machine can reach them (and the kernel has no TCP warning to print)."""
    from traitlets.config import Config

    folder = tempfile.mkdtemp(prefix="toolkit-kernel-")
    config = Config()
    config.KernelManager.transport = "ipc"
    config.KernelManager.ip = os.path.join(folder, "kernel")
    try:
        yield config
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _exit_code_for(ename: str) -> int:
    cls = getattr(_errors, ename, None)
    if isinstance(cls, type) and issubclass(cls, _errors.ToolkitError):
        return cls.exit_code
    return 2


def run_pipeline(settings: RunSettings, *, stages: tuple[str, ...] = STAGES, progress: bool = True,
                 kernel_name: str = "python3") -> PipelineResult:
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    run_id = settings.run_id or datetime.now(UTC).strftime("run-%Y%m%dT%H%M%SZ")
    out = Path(settings.out).resolve()
    run_dir = out / run_id
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _errors.UserInputError(f"cannot create the run folder {run_dir} ({exc.strerror}); "
                                     "pass -p out=DIR with a writable folder") from None
    settings_path = run_dir / "run_settings.json"
    settings_path.write_text(settings.to_json())
    src_dir = notebooks_dir()
    stage_records: dict[str, Any] = {}
    failed: str | None = None
    t0 = time.monotonic()
    for name in stages:
        src = src_dir / f"{name}.ipynb"
        dst = run_dir / f"{name}.ipynb"
        log.info("running %s", name)
        started = time.monotonic()
        try:
            with _local_kernel_config() as kernel_config:
                pm.execute_notebook(
                    str(src), str(dst),
                    parameters={"run_dir": str(run_dir), "settings_path": str(settings_path)},
                    kernel_name=kernel_name, progress_bar=progress, log_output=False, cwd=str(run_dir),
                    request_save_on_cell_execute=True, config=kernel_config,
                )
        except PapermillExecutionError as exc:
            code = _exit_code_for(exc.ename)
            failed = name
            stage_records[name] = {"stage": name, "exit_code": code, "status": "error",
                                   "headline": f"notebook failed: {exc.ename}: {str(exc.evalue).splitlines()[0] if exc.evalue else ''}",
                                   "notebook": str(dst)}
            log.error("%s failed (%s: %s); its executed copy with the error is %s", name, exc.ename,
                      (str(exc.evalue).splitlines() or [""])[0], dst)
        else:
            record_file = run_dir / f"stage_{name}.json"
            if record_file.exists():
                stage_records[name] = json.loads(record_file.read_text())
            else:
                stage_records[name] = {"stage": name, "exit_code": 2, "status": "error",
                                       "headline": "the notebook did not record its outcome"}
                failed = name
        stage_records[name]["seconds"] = round(time.monotonic() - started, 2)
        if dst.exists():
            html_path = run_dir / f"{name}.html"
            try:
                render_notebook_html(dst, html_path)
                stage_records[name]["html"] = html_path.name
            except Exception as exc:  # the report must not hide the run's outcome
                log.warning("could not render %s as HTML: %s", name, exc)
        if failed:
            break
    exit_code = max((r.get("exit_code", 2) for r in stage_records.values()), default=2)
    verdict = {0: "delivered and reconciled within tolerance", 1: "problems found: see the stages below",
               2: f"stopped: {failed or 'unusable input'}"}.get(exit_code, "")
    summary = {
        "run_id": run_id,
        "run_dir": str(run_dir),
        "exit_code": exit_code,
        "verdict": verdict,
        "failed_notebook": failed,
        "seconds": round(time.monotonic() - t0, 2),
        "settings": settings.to_params(),
        "stages": stage_records,
        "paths": {p.name: str(p) for p in sorted(run_dir.iterdir()) if p.is_file()},
    }
    report = write_index(run_dir, summary)
    summary["paths"]["report.html"] = str(report)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True, default=str))
    return PipelineResult(run_dir=run_dir, summary=summary, exit_code=exit_code, report=report)
