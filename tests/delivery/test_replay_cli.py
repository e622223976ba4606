"""`toolkit replay` end to end: exit codes, the ledger, no secrets, and kill -9 then --resume."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter

import pytest

from tests.delivery.conftest import make_events
from tests.delivery.server import EventServer, Reply
from tests.foundation.cdn import Cdn
from toolkit.cli import main
from toolkit.events_io import write_events_jsonl
from toolkit.ledger import read_ledger

KEY = "ReplaySdkKey98765"


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("OPTIMIZELY_SDK_KEY", KEY)


@pytest.fixture
def events_file(tmp_path):
    path = tmp_path / "events.jsonl"
    write_events_jsonl(make_events(300, visitors=30), path)
    return path


def _args(events_file, install, datafile, server, ledger, *extra):
    return ["replay", "--events", str(events_file), "--config", str(install), "--datafile", str(datafile),
            "--endpoint", server.url, "--ledger", str(ledger), "--no-progress", "--max-body-bytes", "2000", *extra]


def test_replay_delivers_and_prints_one_summary_line(env, events_file, fixture_install_path, fixture_datafile_path,
                                                     tmp_path, capsys):
    ledger = tmp_path / "l.sqlite"
    with EventServer() as server:
        rc = main(_args(events_file, fixture_install_path, fixture_datafile_path, server, ledger))
    out = capsys.readouterr().out.strip().splitlines()
    assert rc == 0
    assert len(out) == 1 and out[0].startswith("replay: 300 events") and "300 delivered" in out[0]
    assert len(server.uuid_counts()) == 300 and set(server.uuid_counts().values()) == {1}
    body = json.loads(server.received[0].data)
    assert (body["account_id"], body["project_id"], body["revision"]) == ("12345678", "98765432", "42")
    led = read_ledger(ledger)
    assert led.run["account_id"] == "12345678" and led.run["revision"] == "42" and led.run["input"] == str(events_file)
    assert led.run["endpoint"] == server.url and set(led.events["status"]) == {"delivered"}


def test_replay_400_exits_1_and_dry_run_sends_nothing(env, events_file, fixture_install_path, fixture_datafile_path,
                                                      tmp_path, capsys):
    with EventServer(default=Reply(400, text="bad project")) as server:
        rc = main(_args(events_file, fixture_install_path, fixture_datafile_path, server, tmp_path / "a.sqlite"))
        assert rc == 1 and "300 rejected" in capsys.readouterr().out
        rc = main(_args(events_file, fixture_install_path, fixture_datafile_path, server, tmp_path / "b.sqlite",
                        "--dry-run"))
        n_before = server.count
    assert rc == 0 and "dry run" in capsys.readouterr().out
    assert n_before == len(list(read_ledger(tmp_path / "a.sqlite").batches["batch_id"]))  # the dry run added none
    assert set(read_ledger(tmp_path / "b.sqlite").events["status"]) == {"pending"}


@pytest.mark.parametrize("extra, message", [
    (["--endpoint", "ftp://nowhere"], "not an http(s) URL"),
    (["--resume"], "not found"),
])
def test_replay_bad_input_is_one_line_exit_2(env, events_file, fixture_install_path, fixture_datafile_path, tmp_path,
                                             capsys, extra, message):
    with EventServer() as server:
        rc = main([*_args(events_file, fixture_install_path, fixture_datafile_path, server, tmp_path / "x.sqlite"),
                   *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and message in err[0] and server.count == 0


def test_replay_refuses_to_overwrite_a_ledger(env, events_file, fixture_install_path, fixture_datafile_path, tmp_path,
                                              capsys):
    ledger = tmp_path / "l.sqlite"
    with EventServer() as server:
        assert main(_args(events_file, fixture_install_path, fixture_datafile_path, server, ledger)) == 0
        capsys.readouterr()
        assert main(_args(events_file, fixture_install_path, fixture_datafile_path, server, ledger)) == 2
        assert "--resume" in capsys.readouterr().err
        # resuming a finished run sends nothing
        n = server.count
        assert main(_args(events_file, fixture_install_path, fixture_datafile_path, server, ledger, "--resume")) == 0
        assert server.count == n and "300 already done" in capsys.readouterr().out


def test_no_secret_reaches_ledger_or_output(env, events_file, fixture_datafile_path, tmp_path, capsys):
    with Cdn() as cdn, EventServer() as server:
        cdn.state.datafiles[KEY] = fixture_datafile_path.read_bytes()
        install = tmp_path / "install.json"
        install.write_text(json.dumps({"config": {"account_id": "12345678", "project_id": "98765432",
                                                  "datafile_url": cdn.url(KEY)}}))
        ledger = tmp_path / "l.sqlite"
        rc = main(["replay", "--events", str(events_file), "--config", str(install), "--endpoint", server.url,
                   "--ledger", str(ledger), "--no-progress", "--cache-dir", str(tmp_path / "cache")])
    out = capsys.readouterr()
    assert rc == 0
    assert read_ledger(ledger).run["datafile_source"].endswith("/datafiles/****.json")
    for f in tmp_path.glob("l.sqlite*"):
        assert KEY.encode() not in f.read_bytes()
    assert KEY not in out.out and KEY not in out.err


def _replay_process(args, tmp_path):
    env = dict(os.environ, OPTIMIZELY_SDK_KEY=KEY)
    return subprocess.Popen([sys.executable, "-m", "toolkit", *args], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_kill_9_then_resume_loses_nothing_and_resends_only_in_flight_bodies(
        events_file, fixture_install_path, fixture_datafile_path, tmp_path):
    ledger = tmp_path / "kill.sqlite"
    with EventServer(default=Reply(delay=0.25)) as slow:
        args = _args(events_file, fixture_install_path, fixture_datafile_path, slow, ledger, "--concurrency", "4")
        proc = _replay_process(args, tmp_path)
        deadline = time.monotonic() + 90
        while slow.count < 12 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        assert slow.count >= 12, "the replay did not get going in time"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
        time.sleep(0.3)  # let bodies already on the wire be read by the server
        before = slow.uuid_counts()
        received_before = list(slow.received)
    with sqlite3.connect(ledger) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    led = read_ledger(ledger)
    in_flight = set(led.batches.loc[led.batches["status"] == "in_flight", "batch_id"])
    assert in_flight, "the kill came with no body in flight"
    with EventServer() as fast:
        r = subprocess.run([sys.executable, "-m", "toolkit", *args[:args.index("--endpoint")], "--endpoint", fast.url,
                            *args[args.index("--endpoint") + 2:], "--resume"],
                           env=dict(os.environ, OPTIMIZELY_SDK_KEY=KEY), capture_output=True, text=True, timeout=120)
        after = fast.uuid_counts()
        received_after = list(fast.received)
    assert r.returncode == 0, r.stderr[-2000:]
    total: Counter = before + after
    everything = set(read_ledger(ledger).events["uuid"])
    assert len(everything) == 300 and set(total) == everything  # no loss
    assert set(read_ledger(ledger).events["status"]) == {"delivered"}
    # the only duplicates are events of bodies in flight at the kill, resent byte for byte
    in_flight_uuids = set(led.events.loc[led.events["batch_id"].isin(in_flight), "uuid"])
    twice = {u for u, c in total.items() if c > 1}
    assert twice <= in_flight_uuids
    assert max(total.values()) == 2
    bodies_before = {rec.batch_id: rec.data for rec in received_before}
    resent = [rec for rec in received_after if rec.batch_id in bodies_before]
    assert {rec.batch_id for rec in resent} <= in_flight
    assert all(bodies_before[rec.batch_id] == rec.data for rec in resent)
    assert {u for rec in resent for u in rec.uuids()} == twice
    # nothing finished before the kill was sent again
    done_before = set(led.batches.loc[led.batches["status"] == "delivered", "batch_id"])
    assert not done_before & {rec.batch_id for rec in received_after}


def test_replay_maps_an_export_then_delivers(tmp_path, monkeypatch, capsys):
    from toolkit.sample import generate_sample

    generate_sample(tmp_path / "s", events=300, seed=3)
    cfg = json.loads((tmp_path / "s" / "config.json").read_text())
    monkeypatch.setenv("OPTIMIZELY_SDK_KEY", cfg["config"]["sdk_key"])
    with EventServer() as server:
        rc = main(["replay", "--export", str(tmp_path / "s" / "export.jsonl"), "--config", str(tmp_path / "s" / "config.json"),
                   "--datafile", str(tmp_path / "s" / "datafile.json"), "--endpoint", server.url,
                   "--ledger", str(tmp_path / "l.sqlite"), "--no-progress", "--decisions", "none"])
    out = capsys.readouterr().out.strip().splitlines()
    assert rc == 0 and len(out) == 1 and out[0].startswith("replay: mapped 30")
    led = read_ledger(tmp_path / "l.sqlite")
    assert set(led.events["kind"]) == {"conversion"} and led.run["decisions"] == "none"
    assert set(server.uuid_counts()) == set(led.events["uuid"])


def _sample_args(tmp_path, server, ledger, *extra):
    from toolkit.sample import generate_sample

    s = tmp_path / "s"
    if not s.exists():
        generate_sample(s, events=600, seed=11)
    return ["replay", "--export", str(s / "export.jsonl"), "--config", str(s / "config.json"),
            "--datafile", str(s / "datafile.json"), "--endpoint", server.url, "--ledger", str(ledger),
            "--no-progress", "--max-body-bytes", "6000", *extra]


def _sample_key(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTIMIZELY_SDK_KEY", json.loads((tmp_path / "s" / "config.json").read_text())["config"]["sdk_key"])


def test_streamed_export_sends_what_the_whole_export_maps_and_resumes_with_the_same_bodies(tmp_path, monkeypatch,
                                                                                           capsys):
    from toolkit.datafile import load_datafile
    from toolkit.mapping import map_export
    from toolkit.payload import iter_bodies

    ledger = tmp_path / "l.sqlite"
    # 8 bodies delivered, then the endpoint fails: the run stops with bodies failed (1 attempt each)
    with EventServer(script=[Reply(204)] * 8, default=Reply(503)) as server:
        args = _sample_args(tmp_path, server, ledger, "--chunk-rows", "150", "--max-attempts", "1",
                            "--concurrency", "1")
        _sample_key(tmp_path, monkeypatch)
        assert main(args) == 1
        first = {rec.batch_id: rec.data for rec in server.received}
    whole = map_export(tmp_path / "s" / "export.jsonl", load_datafile(str(tmp_path / "s" / "datafile.json")),
                       progress=False)
    s = whole.summary
    assert capsys.readouterr().out.startswith(f"replay: mapped {s.rows_in} rows ({s.mapped} mapped, {s.skipped} "
                                              f"skipped, {s.quarantined} quarantined); {s.mapped} events in ")
    led = read_ledger(ledger)
    assert led.run["chunk_rows"] == "150"
    failed = set(led.batches.loc[led.batches["status"] == "failed", "batch_id"])
    assert len(failed) == len(first) - 8 and failed <= set(first)
    # every mapped event is in the ledger, once: streaming sends what mapping the whole export gives
    assert sorted(led.events["uuid"]) == sorted(whole.events["uuid"])
    # bodies were cut per chunk of 150 rows: more bodies than the whole export needs at this cap
    assert len(led.batches) > len(list(iter_bodies(whole.events, account_id="1", project_id="1", revision="1",
                                                   max_bytes=6000)))
    # --resume without --chunk-rows rebuilds the same bodies: only the failed ones go again, byte for byte
    with EventServer() as server:
        assert main([*_sample_args(tmp_path, server, ledger), "--resume"]) == 0
        again = {rec.batch_id: rec.data for rec in server.received}
    assert set(again) == failed and all(first[b] == again[b] for b in again)
    assert set(read_ledger(ledger).events["status"]) == {"delivered"}


def test_bucket_decisions_map_the_whole_export_first(tmp_path, monkeypatch, capsys):
    with EventServer() as server:
        args = _sample_args(tmp_path, server, tmp_path / "l.sqlite", "--decisions", "bucket", "--chunk-rows", "150")
        _sample_key(tmp_path, monkeypatch)
        assert main(args) == 0
    led = read_ledger(tmp_path / "l.sqlite")
    assert "chunk_rows" not in led.run and led.run["decisions"] == "bucket"  # a resume maps it whole too
    assert led.events["synthesized"].any()  # bucketing saw every event
    assert set(server.uuid_counts()) == set(led.events["uuid"])


def test_streamed_bodies_do_not_depend_on_the_number_of_mapping_workers(tmp_path, monkeypatch):
    batches = {}
    with EventServer() as server:
        for workers in ("0", "2"):
            ledger = tmp_path / f"w{workers}.sqlite"
            args = _sample_args(tmp_path, server, ledger, "--chunk-rows", "100", "--workers", workers, "--dry-run")
            _sample_key(tmp_path, monkeypatch)
            assert main(args) == 0
            batches[workers] = read_ledger(ledger).batches[["batch_id", "n_events", "bytes"]]
        assert server.count == 0
    assert len(batches["0"]) > 5 and batches["0"].equals(batches["2"])
