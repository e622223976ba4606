"""Disk and permissions: an unwritable output folder is one clear error (exit 2, no traceback) for
every command that writes; a full ledger disk stops the replay with one clear error, leaves the
ledger consistent (SQLite integrity check), and a later --resume completes with each event counted
once at the sandbox."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess

import pytest

from tests.delivery.conftest import make_events
from tests.reliability.helpers import FIXTURE_DATAFILE, REPO, integrity, stored_rows
from toolkit.cli import main
from toolkit.config import parse_integration
from toolkit.datafile import load_datafile
from toolkit.errors import LedgerError
from toolkit.events_io import write_events_jsonl
from toolkit.ledger import Ledger, read_ledger
from toolkit.replay import replay
from toolkit.sandbox import Sandbox

SAMPLE = REPO / "data" / "sample"
KEY = "DiskTestSdkKey1"


def _mount_tmpfs(path, options: str) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    return r.returncode == 0


@pytest.fixture
def readonly_dir(tmp_path):
    """A folder nothing can be written in: chmod for a normal user; a read-only tmpfs for root
    (root ignores permission bits); failing both, a 'folder' below a regular file."""
    d = tmp_path / "readonly"
    d.mkdir()
    if os.geteuid() != 0:
        d.chmod(0o555)
        yield d
        d.chmod(0o755)
    elif _mount_tmpfs(d, "ro,size=1m"):
        yield d
        subprocess.run(["umount", str(d)], check=False)
    else:
        (tmp_path / "file").write_text("")
        yield tmp_path / "file" / "readonly"


def test_unwritable_output_folder_is_one_clear_error(tmp_path, readonly_dir, monkeypatch, capsys):
    monkeypatch.setenv("OPTIMIZELY_SDK_KEY", KEY)
    events = tmp_path / "events.jsonl"
    write_events_jsonl(make_events(50), events)
    install = tmp_path / "install.json"
    install.write_text(json.dumps({"config": {"account_id": "12345678", "project_id": "98765432"}}))
    df = ["--datafile", str(FIXTURE_DATAFILE)]
    ledger = tmp_path / "ledger.sqlite"
    with Sandbox(tmp_path / "sb", datafile=FIXTURE_DATAFILE) as sb:  # a real ledger and E3 export to reconcile
        _run_replay(make_events(50), sb, ledger)
        sb.export_e3(tmp_path / "e3")
    ro = readonly_dir / "sub"
    commands = {
        "map": ["map", "--export", str(SAMPLE / "export.jsonl"), "--out", str(ro / "e.jsonl"), "--no-progress",
                "--datafile", str(SAMPLE / "datafile.json")],
        "expect": ["expect", "--events", str(events), "--out", str(ro / "x.csv"), *df],
        "validate": ["validate", "--events", str(events), "--out", str(ro / "v"), *df],
        "replay": ["replay", "--events", str(events), "--config", str(install), *df,
                   "--endpoint", "http://127.0.0.1:9/v1/events", "--ledger", str(ro / "l.sqlite"), "--no-progress"],
        "replay, ledger in the folder itself": ["replay", "--events", str(events), "--config", str(install), *df,
                                                "--endpoint", "http://127.0.0.1:9/v1/events",
                                                "--ledger", str(readonly_dir / "l.sqlite"), "--no-progress"],
        "sample": ["sample", "--out", str(ro / "s"), "--events", "200"],
        "reconcile": ["reconcile", "--ledger", str(ledger), "--results", str(tmp_path / "e3"), *df, "--out", str(ro / "r")],
        "sandbox export-e3": ["sandbox", "export-e3", "--data", str(tmp_path / "sb"), "--out", str(ro / "e3")],
    }
    problems = []
    for name, args in commands.items():
        try:
            rc = main(args)
        except Exception as exc:  # a traceback for the user
            problems.append(f"{name}: raised {type(exc).__name__}: {exc}")
            continue
        err = capsys.readouterr().err
        lines = [x for x in err.splitlines() if ": error: " in x]
        if rc != 2 or len(lines) != 1 or str(readonly_dir) not in lines[0]:
            problems.append(f"{name}: exit {rc}, stderr {err[-500:]!r}")
    assert not problems, "\n".join(problems)


def _run_replay(events, sb, ledger, **kw):
    cfg = parse_integration({"config": {"account_id": "12345678", "project_id": "98765432"}},
                            env={"OPTIMIZELY_SDK_KEY": KEY})
    return replay(events, config=cfg, datafile=load_datafile(str(FIXTURE_DATAFILE)), ledger=ledger,
                  endpoint=sb.events_url, max_body_bytes=4000, concurrency=4, progress=False, **kw)


def test_full_ledger_disk_stops_cleanly_and_a_resume_completes(tmp_path):
    n = 3000
    events = make_events(n, visitors=300, seed=9)
    path = tmp_path / "run.sqlite"
    with Sandbox(tmp_path / "sandbox", datafile=FIXTURE_DATAFILE) as sb:
        book = Ledger.create(path, {"account_id": "12345678", "project_id": "98765432", "revision": "42"})
        # the disk fills up a few batches in: SQLite may not grow the file past this many pages
        pages = book._conn.execute("PRAGMA page_count").fetchone()[0]
        book._conn.execute(f"PRAGMA max_page_count = {pages + 12}")
        with pytest.raises(LedgerError) as failure:
            _run_replay(events, sb, book)
        book.close()
        message = str(failure.value)
        assert "full" in message and "--resume" in message and "\n" not in message
        assert integrity(path) == "ok"
        before = read_ledger(path)
        assert 0 < len(before.events) < n  # it stopped part-way
        flying = set(before.batches.loc[before.batches["status"] == "in_flight", "batch_id"])
        in_flight = set(before.events.loc[before.events["batch_id"].isin(flying), "uuid"])
        # space is back: resume the run from the same ledger
        with contextlib.closing(Ledger.open(path)) as again:
            outcome = _run_replay(events, sb, again, revision="42")
        stats = sb.stats()
    assert outcome.exit_code == 0 and outcome.report.delivered == n
    after = read_ledger(path)
    assert len(after.events) == n and after.events["status"].eq("delivered").all()
    rows = stored_rows(tmp_path / "sandbox")
    assert len(rows) == n and len({r[0] for r in rows}) == n
    assert stats["duplicates"] <= len(in_flight)  # only bodies in flight at the failure went twice
