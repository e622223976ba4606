"""Pipeline runs shared by the tests of this folder: ``toolkit run`` as a subprocess (the way cron or
an orchestrator calls it) against a Sandbox this module starts, with canary secrets.

Each run is made once per session (notebook kernels start slowly) and the tests read its outputs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from toolkit.sandbox import Sandbox

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample"
TOOLKIT = [sys.executable, "-m", "toolkit"]
# Canaries: values that must never be written anywhere under a run folder.
CANARY_SDK_KEY = "CanarySdkKey-" + "7f3a9c2e41d8"
CANARY_TOKEN = "CanaryToken-" + "5b8e0d17ac64"
RUN_TIMEOUT = 240


@dataclass(frozen=True)
class Run:
    """One finished ``toolkit run``: its exit code, output and run folder."""

    code: int
    stdout: str
    stderr: str
    run_dir: Path

    @property
    def summary(self) -> dict:
        return json.loads((self.run_dir / "summary.json").read_text())


def write_run_toml(folder: Path, sandbox: Sandbox, *, export: str, run_id: str) -> Path:
    """The integration config (no key in it: the key is in the environment) and a run TOML with
    paths relative to itself, as an analyst would keep them."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "optimizely.json").write_text(json.dumps({
        "name": "Optimizely", "variant": "default", "delivery_mode": "server_side",
        "config": {"account_id": "10203040", "project_id": "50607080",
                   "datafile_url": sandbox.url + "/datafiles/{sdk_key}.json",
                   "event_endpoint": sandbox.events_url}}))
    toml = folder / "run.toml"
    toml.write_text(f'''[run]
config = "optimizely.json"
export = "{export}"
results = "{sandbox.url}/v2/experiments/{{experiment_id}}/results"
out = "reports"
run_id = "{run_id}"
''')
    return toml


def start_run(toml: Path, *args: str, cwd: Path) -> tuple[subprocess.Popen, Path]:
    """``toolkit run --config TOML`` from another folder, secrets only in the environment. Returns
    the process and its run folder (``reports/<run_id>`` beside the TOML: out and run_id are in it)."""
    env = {**os.environ, "OPTIMIZELY_SDK_KEY": CANARY_SDK_KEY, "OPTIMIZELY_API_TOKEN": CANARY_TOKEN}
    env.pop("TOOLKIT_NOTEBOOK_RUN_DIR", None)
    cwd.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([*TOOLKIT, "run", "--config", str(toml), "--no-progress", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_id = tomllib.loads(toml.read_text())["run"]["run_id"]
    return proc, toml.parent / "reports" / run_id


def finish(proc: subprocess.Popen, run_dir: Path) -> Run:
    try:
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"toolkit run did not finish in {RUN_TIMEOUT} s; stderr:\n{err[-3000:]}") from None
    return Run(proc.returncode, out, err, run_dir)


def write_clean_export(path: Path, *, visitors: int = 24) -> Path:
    """An export with no defects: every visitor is bucketed in both checkout experiments (so a
    purchase counts in each), then adds to cart and buys in USD, all after the decisions."""
    t0 = 1_793_620_800_000  # 2026-11-02T10:00:00Z
    lines = []

    def row(vid: str, n: int, event: str, at: int, props: dict) -> None:
        iso = f"{_iso(at)}"
        lines.append(json.dumps({"messageId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"clean/{vid}/{n}")),
                                 "type": "track", "event": event, "anonymousId": vid, "properties": props,
                                 "timestamp": iso}))

    for i in range(visitors):
        vid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"clean-visitor-{i}"))
        at = t0 + i * 600_000
        row(vid, 0, "Experiment Viewed", at, {"experiment_id": "51001", "variation_id": ("71001", "71002")[i % 2]})
        row(vid, 1, "Experiment Viewed", at, {"experiment_key": "free_shipping_rule",
                                              "variation_key": ("off", "on")[i // 2 % 2]})
        row(vid, 2, "Product Added", at + 60_000, {"product_id": f"sku_{i:04d}", "price": 24.99, "currency": "USD"})
        row(vid, 3, "Order Completed", at + 120_000, {"order_id": f"ord_{i:04d}", "revenue": f"{20 + i}.99",
                                                      "currency": "USD"})
    path.write_text("\n".join(lines) + "\n")
    return path


def _iso(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _sandbox(folder: Path) -> Sandbox:
    """The sample's datafile served with the canary key; its Results API wants the canary token."""
    return Sandbox(folder, datafile=SAMPLE / "datafile.json", sdk_key=CANARY_SDK_KEY, api_token=CANARY_TOKEN)


@pytest.fixture(scope="session")
def runs(tmp_path_factory) -> dict[str, Run]:
    """Three runs at once (each kernel start is slow; each run has its own sandbox):

    - ``sample``: the bundled sample with its defects: problems found, exit 1;
    - ``clean``: a hand-built export with no defects: everything reconciles, exit 0;
    - ``missing_export``: an export path that does not exist: notebook 01 fails, exit 2.
    """
    root = tmp_path_factory.mktemp("pipeline")
    elsewhere = root / "elsewhere"  # the runs start from another folder: paths come from the TOML
    with _sandbox(root / "sandbox-sample") as sb_sample, _sandbox(root / "sandbox-clean") as sb_clean:
        tomls = {
            "sample": write_run_toml(root / "sample", sb_sample, export=str(SAMPLE / "export.jsonl"), run_id="sample"),
            "clean": write_run_toml(root / "clean", sb_clean, export="clean.jsonl", run_id="clean"),
            "missing_export": write_run_toml(root / "missing", sb_clean, export="no-such-export.jsonl",
                                             run_id="missing"),
        }
        write_clean_export(root / "clean" / "clean.jsonl")
        started = {name: start_run(toml, cwd=elsewhere) for name, toml in tomls.items()}
        return {name: finish(*pr) for name, pr in started.items()}
