"""Secrets: with canary values for the SDK key (OPTIMIZELY_SDK_KEY) and the Results API token
(OPTIMIZELY_API_TOKEN), every command runs against a sandbox whose SDK key is the canary, at -vv;
neither canary appears in stdout, stderr, logs, ledgers, JSON, CSV, HTML or exception text, and the
datafile URL is masked wherever it is shown. (``toolkit run`` with canaries: tests/pipeline.)"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import traceback

import pytest

from tests.reliability.helpers import REPO, env_with, files_holding, toolkit_cmd
from toolkit.cli import main
from toolkit.errors import ToolkitError
from toolkit.sandbox import Sandbox

SDK_CANARY = "CanarySdkKeyR3l1ab9"
TOKEN_CANARY = "CanaryApiTokenQx71zz"
SAMPLE = REPO / "data" / "sample"


@pytest.fixture
def sandbox(tmp_path):
    with Sandbox(tmp_path / "sandbox", datafile=SAMPLE / "datafile.json", sdk_key=SDK_CANARY,
                 api_token=TOKEN_CANARY) as sb:
        yield sb


@pytest.fixture
def install(tmp_path, sandbox):
    """The integration config as a user writes it: the key stays in the environment."""
    path = tmp_path / "install.json"
    cfg = sandbox.install_config()
    cfg["config"].pop("sdk_key")
    cfg["config"]["datafile_url"] = f"{sandbox.url}/datafiles/{{sdk_key}}.json"
    path.write_text(json.dumps(cfg))
    return path


def _clean(text: str) -> None:
    assert SDK_CANARY not in text and TOKEN_CANARY not in text


def test_every_command_keeps_the_canaries_out(tmp_path, monkeypatch, capfd, sandbox, install):
    monkeypatch.setenv("OPTIMIZELY_SDK_KEY", SDK_CANARY)
    monkeypatch.setenv("OPTIMIZELY_API_TOKEN", TOKEN_CANARY)
    monkeypatch.chdir(tmp_path)  # default output folders (reports/...) land here and are scanned too
    cfg = ["--config", str(install), "--cache-dir", str(tmp_path / "cache")]
    run = tmp_path / "run"
    events = run / "events.jsonl"
    steps = [
        ["doctor", *cfg],
        ["map", "--export", str(SAMPLE / "export.jsonl"), "--out", str(events), "--no-progress", *cfg],
        ["validate", "--events", str(events), "--quarantine", str(run / "events.quarantine.jsonl"),
         "--out", str(run / "validation"), *cfg],
        ["expect", "--events", str(events), "--out", str(run / "expected.csv"),
         "--not-counted", str(run / "not_counted.csv"), *cfg],
        ["replay", "--events", str(events), "--ledger", str(run / "ledger.sqlite"), "--no-progress", *cfg],
        ["replay", "--export", str(SAMPLE / "export.jsonl"), "--no-progress", "--dry-run", *cfg],  # default ledger
        ["reconcile", "--ledger", str(run / "ledger.sqlite"), "--results",
         f"{sandbox.url}/v2/experiments/{{experiment_id}}/results", "--expected-events", str(events),
         "--out", str(run / "reconcile"), *cfg],
        ["sandbox", "export-e3", "--data", str(tmp_path / "sandbox"), "--out", str(run / "e3")],
        ["reconcile", "--ledger", str(run / "ledger.sqlite"), "--results", str(run / "e3"),
         "--out", str(run / "reconcile-e3"), *cfg],
    ]
    codes = {}
    for args in steps:
        codes[" ".join(args[:2])] = main(["-vv", *args])
    out = capfd.readouterr()
    assert set(codes.values()) <= {0, 1}, codes  # ran (1: the sample's defects are found, on purpose)
    assert "DEBUG" in out.err  # -vv really logged at debug level
    _clean(out.out)
    _clean(out.err)
    assert "/datafiles/****.json" in out.out  # doctor shows the datafile URL, masked
    assert not files_holding(tmp_path, SDK_CANARY, TOKEN_CANARY)
    assert list((tmp_path / "reports" / "ledgers").glob("replay-*.sqlite"))
    assert list((run / "validation").rglob("*.html")) and list((run / "reconcile").glob("*.csv"))
    from toolkit.ledger import read_ledger

    assert read_ledger(run / "ledger.sqlite").run["datafile_source"].endswith("/datafiles/****.json")


def test_error_paths_keep_the_canaries_out_of_exception_text(tmp_path, monkeypatch, capfd, sandbox, install):
    monkeypatch.setenv("OPTIMIZELY_SDK_KEY", SDK_CANARY)
    monkeypatch.chdir(tmp_path)
    cfg = ["--config", str(install), "--cache-dir", str(tmp_path / "cache")]
    events = tmp_path / "events.jsonl"
    assert main(["map", "--export", str(SAMPLE / "export.jsonl"), "--out", str(events), "--no-progress", *cfg]) == 0
    (tmp_path / "taken.sqlite").write_bytes(b"")
    # wrong token (the canary with a suffix): 401 from the results endpoint
    monkeypatch.setenv("OPTIMIZELY_API_TOKEN", TOKEN_CANARY + "-wrong")
    failing = [
        ["reconcile", "--ledger", str(tmp_path / "nope.sqlite"), "--results",
         f"{sandbox.url}/v2/experiments/{{experiment_id}}/results", "--out", str(tmp_path / "r"), *cfg],
        ["replay", "--events", str(events), "--ledger", str(tmp_path / "taken.sqlite"), *cfg],
        ["doctor", "--config", str(install), "--datafile", f"{sandbox.url}/datafiles/{SDK_CANARY}x.json"],
        ["map", "--export", str(SAMPLE / "export.jsonl"), "--out", str(tmp_path / "e.jsonl"),
         "--datafile", f"{sandbox.url}/datafiles/{SDK_CANARY}.json?stale=1", "--config", str(install)],
    ]
    from toolkit.ledger import Ledger
    from toolkit.reconcile import reconcile  # noqa: F401  (import errors would hide the case below)

    Ledger.create(tmp_path / "led.sqlite", {"account_id": "10203040"}).close()
    failing.append(["reconcile", "--ledger", str(tmp_path / "led.sqlite"), "--results",
                    f"{sandbox.url}/v2/experiments/{{experiment_id}}/results", "--out", str(tmp_path / "r2"), *cfg])
    texts = []
    for args in failing:
        try:
            main(["--debug", "-vv", *args])
        except ToolkitError as exc:  # --debug lets the exception through, traceback and all
            texts.append("".join(traceback.format_exception(exc)))
    assert len(texts) >= 3, "the error cases did not raise"
    for t in texts:
        _clean(t)
    out = capfd.readouterr()
    _clean(out.out)
    _clean(out.err)
    assert not files_holding(tmp_path, SDK_CANARY, TOKEN_CANARY)


def test_sandbox_command_does_not_print_its_canary_key(tmp_path):
    env = env_with(OPTIMIZELY_API_TOKEN=TOKEN_CANARY)
    proc = subprocess.Popen(
        toolkit_cmd("-vv", "sandbox", "--port", "0", "--data", str(tmp_path / "sb"), "--datafile",
                    str(SAMPLE / "datafile.json"), "--sdk-key", SDK_CANARY, "--token-env", "OPTIMIZELY_API_TOKEN",
                    "--config-out", str(tmp_path / "sandbox-install.json")),
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    deadline = time.monotonic() + 120
    while not (tmp_path / "sandbox-install.json").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert re.search(r"listening on http://127\.0\.0\.1:\d+", out)
    _clean(out)
    _clean(err)
    assert "/datafiles/" in out
    assert not files_holding(tmp_path, SDK_CANARY, TOKEN_CANARY)
    # the install JSON it wrote still points the toolkit at it, the key coming from the environment
    from toolkit.config import load_integration

    url = re.search(r"listening on (http://\S+)", out).group(1)
    cfg = load_integration(tmp_path / "sandbox-install.json", env={"OPTIMIZELY_SDK_KEY": SDK_CANARY})
    assert cfg.datafile_url == f"{url}/datafiles/{SDK_CANARY}.json" and cfg.event_endpoint == f"{url}/v1/events"
