import json
import subprocess
import sys

import pytest

from toolkit.cli import main

KEY = "DoctorKey12345"


def run_cli(*args, env=None):
    import os

    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "toolkit", *args], capture_output=True, text=True, env=full_env,
                          timeout=120)


def test_help_lists_doctor():
    r = run_cli("--help")
    assert r.returncode == 0 and "doctor" in r.stdout


def test_doctor_healthy(capsys, monkeypatch, fixture_install_path, fixture_datafile_path):
    monkeypatch.setenv("OPTIMIZELY_SDK_KEY", KEY)
    rc = main(["doctor", "--config", str(fixture_install_path), "--datafile", str(fixture_datafile_path)])
    out = capsys.readouterr().out
    assert rc == 0
    assert "revision        42" in out
    assert "purchase" in out and "checkout_flow" in out and "old_banner" not in out
    assert "healthy" in out


def test_doctor_reports_mismatch_as_a_problem(capsys, monkeypatch, tmp_path, fixture_datafile_path):
    monkeypatch.setenv("OPTIMIZELY_SDK_KEY", KEY)
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"config": {"account_id": "12345678", "project_id": "555"}}))
    rc = main(["doctor", "--config", str(cfg), "--datafile", str(fixture_datafile_path)])
    out = capsys.readouterr().out
    assert rc == 1
    assert "1 problem(s)" in out and "projectId '98765432' != config project_id '555'" in out


def test_doctor_bad_config_exits_2_with_one_line_per_field_and_no_traceback(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"config": {"account_id": "abc", "project_id": "x1"}}))
    r = run_cli("doctor", "--config", str(cfg), env={"OPTIMIZELY_SDK_KEY": KEY})
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("toolkit doctor: error: ") for line in lines)
    assert "account_id" in lines[0] and "project_id" in lines[1]
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("args", [["doctor"], ["doctor", "--config"], ["nosuchcommand"]])
def test_usage_errors_exit_2(args):
    r = run_cli(*args)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 3
