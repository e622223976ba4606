"""``toolkit demo``: the bundled sample (or a fresh one) replayed to a local sandbox through the
whole papermill pipeline, with no account and no network.

The sandbox runs in this process on 127.0.0.1; the notebooks' kernels reach it over HTTP like
they would reach Optimizely. The SDK key reaches the kernels through the environment only.
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from .execute import PipelineResult, run_pipeline
from .settings import RunSettings
from .stages import SAMPLE

__all__ = ["run_demo", "headline"]

log = logging.getLogger(__name__)


@contextmanager
def _env(name: str, value: str):
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def run_demo(*, out: str | Path = "reports", events: int | None = None, seed: int = 7,
             progress: bool = True) -> PipelineResult:
    """Run the pipeline on the sample against a fresh sandbox; returns the pipeline's result."""
    from ..sandbox import Sandbox

    run_id = datetime.now(UTC).strftime("demo-%Y%m%dT%H%M%SZ")
    run_dir = Path(out).resolve() / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    sample = SAMPLE
    if events:
        from ..sample import generate_sample

        sample = run_dir / "sample"
        generate_sample(sample, events=events, seed=seed)
    sample_cfg = json.loads((sample / "config.json").read_text())["config"]
    sdk_key = sample_cfg["sdk_key"]
    with Sandbox(run_dir / "sandbox", datafile=sample / "datafile.json", sdk_key=sdk_key) as sandbox:
        log.info("sandbox on %s", sandbox.url)
        config_path = run_dir / "optimizely.json"
        config_path.write_text(json.dumps({
            "name": "Optimizely", "variant": "default", "delivery_mode": "server_side",
            "config": {"account_id": sample_cfg["account_id"], "project_id": sample_cfg["project_id"],
                       "datafile_url": sandbox.url + "/datafiles/{sdk_key}.json",
                       "event_endpoint": sandbox.events_url},
        }, indent=2))
        settings = RunSettings(
            config=str(config_path), export=str(sample / "export.jsonl"),
            results=sandbox.url + "/v2/experiments/{experiment_id}/results",
            out=str(run_dir.parent), run_id=run_id, strict=True,
        )
        with _env(settings.sdk_key_env, sdk_key):
            return run_pipeline(settings, progress=progress)


def headline(result: PipelineResult) -> list[str]:
    """The numbers a new user should see first."""
    stages = result.summary["stages"]
    lines = []
    for name, label in (("01_load_export", "mapped"), ("02_validate_rules", "validated"),
                        ("03_replay", "replayed"), ("04_reconcile", "reconciled")):
        if name in stages:
            lines.append(f"  {label:<11} {stages[name].get('headline', '')}")
    diagnoses = stages.get("04_reconcile", {}).get("diagnoses") or {}
    if diagnoses:
        top = sorted(diagnoses.items(), key=lambda kv: -kv[1])[:6]
        lines.append("  diagnoses   " + ", ".join(f"{code} ({n})" for code, n in top))
    return lines
