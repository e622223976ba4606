"""``toolkit sandbox`` in the foreground (a real process) and ``toolkit sandbox export-e3``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import requests

from toolkit.cli import main

from .bodies import post, scenario
from .conftest import FIXTURE_DATAFILE


def test_foreground_run_prints_urls_and_install_json_and_stops_on_sigint(tmp_path):
    def while_running(config: dict) -> None:
        events_url = config["config"]["event_endpoint"]
        assert post(events_url, scenario()).status_code == 204
        assert requests.get(config["config"]["datafile_url"], timeout=30).status_code == 200
        # the install JSON is what the toolkit's config loader reads
        from toolkit.config import load_integration

        integ = load_integration(tmp_path / "install.json")
        assert integ.event_endpoint == events_url and integ.datafile_url == config["config"]["datafile_url"]

    out, _ = _run_foreground(tmp_path, while_running)
    assert "sandbox listening on http://127.0.0.1:" in out
    assert "sandbox stopped: 23 events received, 22 stored, 1 duplicates" in out


def test_export_e3_command(tmp_path, capsys):
    from toolkit.sandbox import Sandbox

    with Sandbox(tmp_path / "state", datafile=FIXTURE_DATAFILE) as sb:
        post(sb.events_url, scenario())
    assert main(["sandbox", "export-e3", "--data", str(tmp_path / "state"), "--out", str(tmp_path / "e3")]) == 0
    assert "E3 export: 8 decisions" in capsys.readouterr().out
    assert (tmp_path / "e3" / "type=events").is_dir()


def test_user_errors_are_one_line_exit_2(tmp_path, capsys):
    assert main(["sandbox", "export-e3", "--data", str(tmp_path / "none"), "--out", str(tmp_path)]) == 2
    assert main(["sandbox", "--host", "0.0.0.0", "--data", str(tmp_path)]) == 2
    assert main(["sandbox", "--data", str(tmp_path / "empty"), "--port", "0"]) == 2
    assert main(["sandbox", "--faults", "error=5", "--data", str(tmp_path), "--datafile", str(FIXTURE_DATAFILE)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("toolkit sandbox: error: ") for line in err)
    assert "Traceback" not in "".join(err)


def _run_foreground(tmp_path, while_running, *extra: str, env: dict[str, str] | None = None) -> tuple[str, str]:
    """Start ``toolkit sandbox`` with ``extra``, wait for its install JSON, call ``while_running(install
    JSON)``, stop it with SIGINT; return its (stdout, stderr)."""
    cfg = tmp_path / "install.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "toolkit", "sandbox", "--port", "0", "--data", str(tmp_path / "state"),
         "--datafile", str(FIXTURE_DATAFILE), "--config-out", str(cfg), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"})
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Ctrl-C"):
                break
        while_running(json.loads(cfg.read_text()))
    finally:
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return "".join(lines) + rest, err


def _serves_key(key: str):
    """A ``while_running`` check: the CDN answers 200 for ``key`` and 403 for the default key."""
    def check(config: dict) -> None:
        base = config["config"]["event_endpoint"].removesuffix("/v1/events")
        assert requests.get(f"{base}/datafiles/{key}.json", timeout=30).status_code == 200
        assert requests.get(f"{base}/datafiles/SandboxSdkKey.json", timeout=30).status_code == 403
    return check


def test_sdk_key_from_an_environment_variable_is_served_and_never_printed(tmp_path):
    key = "EnvKey-7f3c9a1e"
    out, err = _run_foreground(tmp_path, _serves_key(key), "--sdk-key-env", "MY_SANDBOX_KEY",
                               env={"MY_SANDBOX_KEY": key})
    assert key not in out and key not in err and key not in (tmp_path / "install.json").read_text()
    assert "--sdk-key puts the key" not in err  # no deprecation warning on this path


def test_sdk_key_on_the_command_line_still_works_with_a_warning(tmp_path):
    key = "ArgvKey-51d2e0b4"
    out, err = _run_foreground(tmp_path, _serves_key(key), "--sdk-key", key)
    assert "--sdk-key puts the key on the command line" in err and "--sdk-key-env" in err
    assert key not in out and key not in err


def test_sdk_key_env_errors_are_one_line_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("NO_SUCH_SANDBOX_KEY", raising=False)
    monkeypatch.setenv("SOME_SANDBOX_KEY", "k-1234")
    base = ["sandbox", "--port", "0", "--data", str(tmp_path), "--datafile", str(FIXTURE_DATAFILE)]
    assert main([*base, "--sdk-key-env", "NO_SUCH_SANDBOX_KEY"]) == 2
    assert main([*base, "--sdk-key-env", "SOME_SANDBOX_KEY", "--sdk-key", "other"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("toolkit sandbox: error: ") for line in err)
    assert "NO_SUCH_SANDBOX_KEY" in err[0] and "not both" in err[1]
