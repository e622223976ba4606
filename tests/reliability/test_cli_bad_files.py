"""Broken configs, datafiles, results files, ledgers and event files: each gives exit 2 and one clear
error line naming the file, never a traceback (real subprocesses, all run at once)."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.delivery.conftest import make_bodies, make_events
from tests.reliability.helpers import FIXTURE_DATAFILE, REPO, env_with, toolkit_cmd
from toolkit.delivery import deliver

SAMPLE = REPO / "data" / "sample" / "export.jsonl"


@pytest.fixture
def files(tmp_path):
    f = {}

    def put(name: str, content: str | bytes) -> str:
        p = tmp_path / name
        p.write_bytes(content.encode() if isinstance(content, str) else content)
        f[name] = str(p)
        return str(p)

    put("good.json", json.dumps({"config": {"account_id": "12345678", "project_id": "98765432"}}))
    put("notjson.json", '{"config": {"account_id": "12345678",')
    put("no_account.json", json.dumps({"config": {"project_id": "98765432"}}))
    put("letters.json", json.dumps({"config": {"account_id": "12ab", "project_id": "98765432"}}))
    put("broken.toml", "[optimizely\naccount_id = 1\n")
    put("df_notjson.json", "<html>not a datafile</html>")
    put("df_schema.json", json.dumps({"accountId": "12345678", "projectId": "98765432", "version": "1"}))
    other = json.loads(FIXTURE_DATAFILE.read_text())
    other["accountId"] = "11111111"
    put("df_other_account.json", json.dumps(other))
    put("events_broken.jsonl", '{"kind": "conversion", "uuid": \n[1,2]\n')
    put("results_broken.json", '{"experiment_id": "50001", "metrics": [')
    put("results_cols.csv", "a,b,c\n1,2,3\n")
    put("not_a_ledger.sqlite", b"SQLite format 3\x00" + b"\x00" * 200)
    ledger = tmp_path / "ledger.sqlite"
    deliver(make_bodies(make_events(20)), endpoint="http://127.0.0.1:9/v1/events", ledger=ledger, dry_run=True,
            progress=False)
    f["ledger"] = str(ledger)
    f["missing"] = str(tmp_path / "missing.json")
    f["out"] = str(tmp_path / "out")
    return f


def _cases(f):
    df = str(FIXTURE_DATAFILE)
    mapping = ["map", "--export", str(SAMPLE), "--out", f["out"] + "/e.jsonl", "--config", f["good.json"]]
    rec = ["reconcile", "--ledger", f["ledger"], "--datafile", df, "--out", f["out"]]
    return {
        "config not JSON": (["doctor", "--config", f["notjson.json"]], "notjson.json"),
        "config without account_id": (["doctor", "--config", f["no_account.json"]], "account_id"),
        "config account_id not digits": (["doctor", "--config", f["letters.json"]], "account_id"),
        "config file missing": (["doctor", "--config", f["missing"]], "missing.json"),
        "TOML config broken": (["replay", "--events", f["events_broken.jsonl"], "--config", f["broken.toml"],
                                "--datafile", df, "--endpoint", "http://127.0.0.1:9/v1/events"], "broken.toml"),
        "datafile not JSON": ([*mapping, "--datafile", f["df_notjson.json"]], "df_notjson.json"),
        "datafile wrong schema": ([*mapping, "--datafile", f["df_schema.json"]], "df_schema.json"),
        "datafile of another account": ([*mapping, "--datafile", f["df_other_account.json"]], "11111111"),
        "datafile missing": ([*mapping, "--datafile", f["missing"]], "missing.json"),
        "events file broken": (["expect", "--events", f["events_broken.jsonl"], "--out", f["out"] + "/x.csv",
                                "--datafile", df], "events_broken.jsonl"),
        "results JSON broken": ([*rec, "--results", f["results_broken.json"]], "results_broken.json"),
        "results CSV wrong columns": ([*rec, "--results", f["results_cols.csv"]], "results_cols.csv"),
        "results file missing": ([*rec, "--results", f["missing"]], "missing.json"),
        "ledger not a ledger": (["reconcile", "--ledger", f["not_a_ledger.sqlite"], "--datafile", df, "--out", f["out"],
                                 "--results", f["results_broken.json"]], "not_a_ledger.sqlite"),
        "sandbox datafile broken": (["sandbox", "--port", "0", "--data", f["out"] + "/sb", "--datafile",
                                     f["df_notjson.json"]], "df_notjson.json"),
        "sandbox on a public address": (["sandbox", "--port", "0", "--host", "0.0.0.0", "--data", f["out"] + "/sb2",
                                         "--datafile", df], "loopback"),
    }


# one of each kind in make test (each case is a Python process: ~1 CPU-second); all of them in make soak
FAST = ("config not JSON", "config without account_id", "TOML config broken", "datafile not JSON",
        "datafile of another account", "events file broken", "results JSON broken", "results CSV wrong columns",
        "ledger not a ledger", "sandbox on a public address")


@pytest.mark.parametrize("which", ["fast", pytest.param("all", marks=pytest.mark.soak)])
def test_broken_files_give_one_error_line_and_exit_2(files, which):
    cases = {k: v for k, v in _cases(files).items() if which == "all" or k in FAST}
    assert which == "all" or len(cases) == len(FAST)
    env = env_with(OPTIMIZELY_SDK_KEY="CliBadFilesKey1")
    procs = {name: subprocess.Popen(toolkit_cmd(*args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True) for name, (args, _) in cases.items()}
    problems = []
    for name, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            problems.append(f"{name}: still running after 240 s")
            continue
        errors = [line for line in err.splitlines() if ": error: " in line]
        expected = cases[name][1]
        if proc.returncode != 2 or "Traceback" in err or len(errors) != 1 or expected not in errors[0]:
            problems.append(f"{name}: exit {proc.returncode}, stderr {err[-600:]!r}")
    assert not problems, "\n".join(problems)
