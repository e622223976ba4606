"""``toolkit run`` end to end (subprocess, against sandboxes the tests start): summary.json, the
report, exit codes 0 / 1 / 2, no secret in any file of a run folder, the HTML opened offline."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import nbformat
import pytest

from toolkit.pipeline import STAGES

from .browser import Chromium, find_chromium
from .conftest import CANARY_SDK_KEY, CANARY_TOKEN, SAMPLE

MANIFEST = json.loads((SAMPLE / "manifest.json").read_text())


def _stages(run) -> dict:
    return run.summary["stages"]


# ------------------------------------------------------------------------------ the sample: exit 1


def test_sample_run_finds_the_samples_defects_and_exits_1(runs):
    run = runs["sample"]
    assert run.code == 1, run.stderr[-3000:]
    s = run.summary
    assert (s["exit_code"], s["failed_notebook"], s["run_id"]) == (1, None, "sample")
    assert list(s["stages"]) == list(STAGES)
    st = s["stages"]
    for name in STAGES:
        assert {"status", "headline", "exit_code", "seconds", "html"} <= set(st[name]), name

    load = st["01_load_export"]
    assert load["rows_in"] == MANIFEST["files"]["export.jsonl"]["rows"]
    assert load["mapped"] + load["skipped"] + load["quarantined"] == load["rows_in"]
    assert sum(load["by_reason"].values()) == load["quarantined"] > 0
    assert load["mapped"] == load["conversions"] + load["impressions"]

    replay = st["03_replay"]
    assert (replay["status"], replay["delivered"], replay["rejected"], replay["failed"], replay["pending"]) == \
        ("ok", load["mapped"], 0, 0, 0)

    rec = st["04_reconcile"]
    assert (rec["status"], rec["exit_code"], rec["unexplained"]) == ("problems", 1, 0)
    defects = MANIFEST["defects"]
    diag = rec["diagnoses"]
    assert diag["key_mismatch"] == sum(defects["miscased_keys"].values())
    assert diag["not_bucketed"] == defects["unbucketed_conversions"]
    assert diag["visitor_inflation"] == defects["multi_anonymous_persons"]
    assert diag["decision_after_conversion"] >= defects["conversion_before_decision"]

    assert "run sample: exit 1" in run.stdout
    assert f"report:  {run.run_dir / 'report.html'}" in run.stdout


def test_sample_run_folder_holds_notebooks_report_ledger_and_stage_files(runs):
    run = runs["sample"]
    names = {p.name for p in run.run_dir.iterdir()}
    for stage in STAGES:
        assert {f"{stage}.ipynb", f"{stage}.html", f"stage_{stage}.json"} <= names
    assert {"summary.json", "report.html", "run_settings.json", "ledger.sqlite", "events.jsonl",
            "quarantine.jsonl", "map_summary.json", "validation", "reconcile"} <= names
    for path in run.summary["paths"].values():
        assert Path(path).exists(), path
    with sqlite3.connect(run.run_dir / "ledger.sqlite") as db:
        delivered = db.execute("SELECT COUNT(*) FROM events WHERE status = 'delivered'").fetchone()[0]
    assert delivered == _stages(run)["03_replay"]["delivered"]
    # the executed notebooks ran with the settings file, not with secrets, as parameters
    nb = nbformat.read(run.run_dir / "01_load_export.ipynb", as_version=4)
    injected = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert "settings_path" in injected.source and "run_dir" in injected.source
    assert "sdk_key" not in injected.source.replace("sdk_key_env", "")


def test_report_shows_each_stage_without_code(runs):
    run = runs["sample"]
    index = (run.run_dir / "report.html").read_text()
    assert "Exit code <b>1</b>" in index and "sample" in index
    for stage in STAGES:
        assert f'<a href="{stage}.html">{stage}</a>' in index
        assert _stages(run)[stage]["headline"].split(":")[0] in index
    load_html = (run.run_dir / "01_load_export.html").read_text()
    assert "stages.run_map(" not in load_html  # inputs hidden
    assert "data:image/png;base64," in load_html  # plots embedded, not linked
    rec_html = (run.run_dir / "04_reconcile.html").read_text()
    for code in _stages(run)["04_reconcile"]["diagnoses"]:
        assert code in rec_html


# ------------------------------------------------------------------------------ a clean export: exit 0


def test_clean_export_reconciles_and_exits_0(runs):
    run = runs["clean"]
    assert run.code == 0, run.stderr[-3000:]
    s = run.summary
    assert s["exit_code"] == 0 and s["verdict"] == "delivered and reconciled within tolerance"
    st = s["stages"]
    assert {st[n]["status"] for n in STAGES} == {"ok"}
    assert st["01_load_export"]["quarantined"] == 0
    assert st["03_replay"]["delivered"] == st["01_load_export"]["mapped"] > 0
    rec = st["04_reconcile"]
    assert rec["rows_by_status"]["ok"] > 0
    assert (rec["rows_by_status"]["explained"], rec["rows_by_status"]["gap"], rec["unexplained"]) == (0, 0, 0)


# ------------------------------------------------------------------------------ a failing notebook: exit 2


def test_failing_notebook_keeps_its_executed_copy_and_exits_2(runs):
    run = runs["missing_export"]
    assert run.code == 2, run.stderr[-3000:]
    s = run.summary
    assert s["failed_notebook"] == "01_load_export"
    assert list(s["stages"]) == ["01_load_export"]  # the pipeline stops at the failing notebook
    assert s["stages"]["01_load_export"]["status"] == "error"
    assert "no-such-export.jsonl" in s["stages"]["01_load_export"]["headline"]
    copy = run.run_dir / "01_load_export.ipynb"
    nb = nbformat.read(copy, as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors and "no-such-export.jsonl" in errors[0]["evalue"]
    lines = [ln for ln in run.stderr.splitlines() if "01_load_export failed" in ln]
    assert len(lines) == 1 and str(copy) in lines[0]
    assert "Traceback" not in run.stderr
    assert (run.run_dir / "report.html").exists()


# ------------------------------------------------------------------------------ secrets


def test_no_canary_secret_in_any_file_of_any_run_folder(runs):
    # The canaries were really used: the datafile came from the sandbox's CDN under the canary key
    # (403 otherwise) and the results from its API with the canary token (401 otherwise).
    assert _stages(runs["sample"])["04_reconcile"]["status"] == "problems"
    kinds = set()
    for run in runs.values():
        assert CANARY_SDK_KEY not in run.stdout + run.stderr and CANARY_TOKEN not in run.stdout + run.stderr
        for path in run.run_dir.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert CANARY_SDK_KEY.encode() not in data, path
                assert CANARY_TOKEN.encode() not in data, path
                kinds.add(path.suffix)
    # the scan covered every kind of file a run writes (notebooks, HTML, Data Docs, JSON, CSV, ledger)
    assert {".ipynb", ".html", ".json", ".jsonl", ".csv", ".sqlite"} <= kinds
    assert any((runs["sample"].run_dir / "validation").rglob("*.html"))


# ------------------------------------------------------------------------------ the HTML, offline

_REMOTE = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//|@import\s+url\(\s*["']?(?:https?:)?//|<script[^>]*\ssrc=""",
                     re.IGNORECASE)


def _report_pages(run) -> list:
    return [run.run_dir / "report.html", *(run.run_dir / f"{s}.html" for s in STAGES)]


def test_report_pages_load_no_remote_script_or_stylesheet(runs):
    for page in _report_pages(runs["sample"]):
        found = _REMOTE.findall(page.read_text())
        assert not found, f"{page.name} loads from the network: {found[:3]}"


@pytest.fixture(scope="module")
def chromium():
    exe = find_chromium()
    assert exe, "headless Chromium is needed for the report check: apt-get install -y chromium"
    with Chromium(exe) as browser:
        yield browser


def test_report_pages_open_offline_in_headless_chromium(runs, chromium):
    for page in _report_pages(runs["sample"]):
        report = chromium.open(page.resolve().as_uri())
        assert report.loaded, page.name
        assert report.errors == [], f"{page.name}: {report.errors[:3]}"
        assert report.network_requests == [], f"{page.name}: {report.network_requests[:3]}"
        assert report.requests and report.requests[0].startswith("file:")  # the probe saw the page itself
