"""Crash and resume: ``toolkit replay`` killed with SIGKILL at several seeded random points and
resumed each time until done. Nothing is lost; only events of bodies in flight at a kill are sent
again, in byte-identical bodies; the sandbox counts every event once; the ledger passes SQLite's
integrity check after every kill."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from collections import Counter

import pytest

from tests.delivery.conftest import make_events
from tests.reliability.helpers import (
    FIXTURE_DATAFILE,
    RecordingProxy,
    body_uuids,
    env_with,
    integrity,
    stored_rows,
    toolkit_cmd,
)
from toolkit.events_io import write_events_jsonl
from toolkit.ledger import read_ledger
from toolkit.sandbox import FaultSpec, Sandbox

KEY = "CrashResumeSdkKey42"


def _start(args, cwd):
    return subprocess.Popen(toolkit_cmd(*args), env=env_with(OPTIMIZELY_SDK_KEY=KEY), cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.parametrize("n, kills, seed", [(2_000, 3, 5), pytest.param(40_000, 8, 17, marks=pytest.mark.soak)])
def test_kill_9_at_random_points_then_resume_until_done(tmp_path, n, kills, seed):
    rng = random.Random(seed)
    events = make_events(n, visitors=max(10, n // 10), seed=seed)
    events_file = tmp_path / "events.jsonl"
    write_events_jsonl(events, events_file)
    install = tmp_path / "install.json"
    install.write_text(json.dumps({"config": {"account_id": "12345678", "project_id": "98765432"}}))
    ledger = tmp_path / "run.sqlite"
    in_flight_at_kill: list[set[str]] = []  # uuids of the bodies in flight at each kill

    # latency makes each body take a while, so the kills land mid-run with bodies on the wire
    with Sandbox(tmp_path / "sandbox", datafile=FIXTURE_DATAFILE, faults=FaultSpec(latency_ms=40)) as sb, \
            RecordingProxy(sb.events_url) as proxy:
        base = ["replay", "--events", str(events_file), "--config", str(install), "--datafile", str(FIXTURE_DATAFILE),
                "--endpoint", proxy.url, "--ledger", str(ledger), "--no-progress", "--max-body-bytes", "4000",
                "--concurrency", "4"]
        resume = False
        for _ in range(kills):
            start = proxy.count
            wait_for = start + rng.randint(3, 30)
            proc = _start(base + (["--resume"] if resume else []), tmp_path)
            deadline = time.monotonic() + 120
            while proxy.count < wait_for and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            if proc.poll() is not None:  # finished before this kill point: nothing more to kill
                assert proc.returncode == 0, proc.stderr.read().decode()[-2000:]
                break
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            proc.stderr.close()
            proxy.settle()
            assert integrity(ledger) == "ok"
            led = read_ledger(ledger)
            flying = set(led.batches.loc[led.batches["status"] == "in_flight", "batch_id"])
            in_flight_at_kill.append(set(led.events.loc[led.events["batch_id"].isin(flying), "uuid"]))
            resume = True
        done = subprocess.run(toolkit_cmd(*base, "--resume"), env=env_with(OPTIMIZELY_SDK_KEY=KEY), cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
        proxy.settle()
        stats = sb.stats()
        sent = proxy.snapshot()
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(in_flight_at_kill) >= 2, "fewer than two kills landed mid-run"
    assert all(in_flight_at_kill), "a kill came with no body in flight"
    assert integrity(ledger) == "ok"

    # no loss: every event delivered, per the ledger and per the sandbox
    led = read_ledger(ledger)
    assert len(led.events) == n and led.events["status"].eq("delivered").all()
    assert set(led.batches["status"]) == {"delivered"}
    counts = Counter(u for b in sent for u in body_uuids(b))
    assert set(counts) == set(events["uuid"])
    # only events of bodies in flight at a kill went out more than once, once per such kill at most
    for uuid, c in counts.items():
        if c > 1:
            assert c - 1 <= sum(uuid in flying for flying in in_flight_at_kill), uuid
    # ... and they went out identically: every event travels in one and the same body each time
    bodies_of = {}
    for b in sent:
        for u in body_uuids(b):
            bodies_of.setdefault(u, set()).add(b)
    assert all(len(v) == 1 for v in bodies_of.values())
    # the sandbox counted each event once; what it saw again it recognised as a duplicate
    rows = stored_rows(tmp_path / "sandbox")
    assert len(rows) == n and len({r[0] for r in rows}) == n
    assert stats["events_stored"] == n
    assert stats["duplicates"] == sum(counts.values()) - n
    assert led.run.get("resumes") == str(len(in_flight_at_kill))
