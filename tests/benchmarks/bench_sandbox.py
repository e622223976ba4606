"""Sandbox ingest speed: 1000-event bodies, target >= 100k events/s on a 2-core machine; and the
results endpoints (Results API JSON, CSV, E3 export) on a large store (1M events).

Two rows: over HTTP (the sandbox as its own process, ``toolkit sandbox``, fed by two keep-alive
client threads in this process: the figure a replay sees) and in-process (validation + SQLite,
no HTTP: the sandbox's own cost, up to a read of the deduplicated counts). Machines running these are often shared and loaded, so each row
also reports CPU-bound rates (events per CPU-second of the sandbox) beside the wall-clock rate.

The bodies look like a replay's: uuid-shaped event uuids (random keys for the dedup index, the
costly case), one impression and nine purchases with revenue and tags per visitor.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import orjson
import psutil
import pytest
import requests

from tests.benchmarks.harness import BenchRow, Measurement, measure
from toolkit.datafile import load_datafile
from toolkit.sandbox import (
    Catalog,
    Store,
    attribute,
    check_body,
    decode_body,
    export_e3,
    results_csv,
    results_json,
)
from toolkit.sandbox.ingest import gc_paused
from toolkit.sandbox.results import experiment_event_ids

pytestmark = pytest.mark.bench

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "datafile.json"
TARGET = 100_000  # events/s
_TICK = 1 / os.sysconf("SC_CLK_TCK")  # the resolution of psutil's CPU times of another process
RESULTS_TARGET = 5.0  # s for the Results API JSON / CSV of one experiment over 1M events ("a few seconds")


def _body(b: int, visitors: int = 100, per_visitor: int = 10) -> bytes:
    """1000 events: per visitor one impression and nine purchases with revenue and tags."""
    rng = random.Random(b)

    def uid() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    vis = []
    for v in range(visitors):
        vid = f"b{b}-v{v}"
        snaps = [{"decisions": [{"campaign_id": "60001", "experiment_id": "50001",
                                 "variation_id": "70001" if v % 2 else "70002",
                                 "metadata": {"flag_key": "new_checkout", "rule_key": "checkout_flow",
                                              "rule_type": "feature-test", "variation_key": "x", "enabled": True}}],
                  "events": [{"entity_id": "60001", "key": "campaign_activated", "timestamp": 1_700_000_000_000 + v,
                              "uuid": uid()}]}]
        for k in range(per_visitor - 1):
            snaps.append({"events": [{"entity_id": "40001", "key": "purchase", "timestamp": 1_700_000_001_000 + k,
                                      "uuid": uid(), "revenue": 1999,
                                      "tags": {"revenue": 1999, "currency": "EUR"}}]})
        vis.append({"visitor_id": vid, "attributes": [{"entity_id": "20001", "key": "country", "type": "custom",
                                                       "value": "GB"}], "snapshots": snaps})
    return orjson.dumps({"account_id": "12345678", "project_id": "98765432", "revision": "42",
                         "client_name": "bench", "client_version": "0", "anonymize_ip": True,
                         "enrich_decisions": True, "visitors": vis})


def _scale(request) -> int:
    return 10 if request.config.getoption("--bench-scale") == "tiny" else 200  # bodies per repeat


def _median(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 2]


def test_ingest_in_process(bench, request, tmp_path):
    bench.add(run_in_process(_scale(request), tmp_path))


def test_ingest_over_http(bench, request, tmp_path):
    bench.add(run_over_http(_scale(request), tmp_path))


def test_results_on_a_large_store(bench, request, tmp_path):
    for row in run_results(100 if request.config.getoption("--bench-scale") == "tiny" else 1000, tmp_path):
        bench.add(row)


def run_results(n: int, tmp_path: Path, repeat: int = 3) -> list[BenchRow]:
    """``n`` 1000-event bodies stored (a tenth decisions), then the Results API JSON and the CSV of
    the experiment (each an attribution over the whole store) and the E3 export."""
    df = load_datafile(FIXTURE)
    catalog = Catalog.from_datafile(df)
    store = Store(tmp_path / "results", background=True)
    try:
        for i in range(n):
            with gc_paused():
                p = check_body(decode_body(_body(i), "application/json"), catalog, received_at=time.time())
                store.append(p.decisions, p.conversions, {"events.received": p.n_events})
        assert store.counters()["events.stored"] == n * 1000
        exp = df.experiments["50001"]
        events = [e for e, _ in experiment_event_ids(df, exp.id)]
        cpu: dict[str, list[float]] = {"json": [], "csv": [], "e3": []}

        def timed(kind: str, fn) -> None:
            c0 = time.process_time()
            fn()
            cpu[kind].append(time.process_time() - c0)

        def results(render) -> None:
            att = attribute(store, exp.id, events)
            assert att.total_visitors == n * 100 and att.tally("70001", "40001").total == n * 450
            render(exp, df, att, now_ms=0)

        m_json = measure(lambda: timed("json", lambda: results(results_json)), repeat=repeat)
        m_csv = measure(lambda: timed("csv", lambda: results(results_csv)), repeat=repeat)
        m_e3 = measure(lambda: timed("e3", lambda: export_e3(store, tmp_path / "e3")), repeat=1)
    finally:
        store.close()
    load = f"load {os.getloadavg()[0]:.1f}"
    rows = []
    for name, m, kind in (("Results API JSON", m_json, "json"), ("results CSV export", m_csv, "csv")):
        rows.append(BenchRow(f"sandbox {name}, {n * 1000:,} events", m.median, RESULTS_TARGET, "s",
                             "target: a few seconds", f"< {RESULTS_TARGET:g} s", m.median < RESULTS_TARGET,
                             spread=m.spread, notes=f"{_median(cpu[kind]):.2f} CPU-s; {load}",
                             extra={"cpu_s": _median(cpu[kind])}))
    rows.append(BenchRow(f"sandbox E3 export, {n * 1000:,} events", m_e3.median, None, "s", "", "report",
                         True, notes=f"{cpu['e3'][0]:.2f} CPU-s (Arrow threads included); {load}",
                         extra={"cpu_s": cpu["e3"][0]}))
    return rows


def run_in_process(n: int, tmp_path: Path, repeat: int = 3) -> BenchRow:
    """``n`` 1000-event bodies through decode, check and the store, as the server does, to a read."""
    bodies = [_body(i) for i in range(n)]
    catalog = Catalog.from_datafile(load_datafile(FIXTURE))
    runs = iter(range(100))
    cpu: list[float] = []

    def ingest() -> None:
        c0 = time.process_time()
        store = Store(tmp_path / f"run{next(runs)}", background=True)  # as the server runs it
        for data in bodies:  # as POST /v1/events does
            with gc_paused():
                p = check_body(decode_body(data, "application/json"), catalog, received_at=time.time())
                store.append(p.decisions, p.conversions, {"events.received": p.n_events})
        assert store.counters()["events.stored"] == n * 1000  # a read: everything deduplicated
        store.close()
        cpu.append(time.process_time() - c0)

    m = measure(ingest, repeat=repeat)
    rate = n * 1000 / m.median
    cpu_rate = n * 1000 / _median(cpu)
    return (BenchRow("sandbox ingest, in-process (validate+SQLite)", rate, TARGET, "events/s",
                       "target 100k events/s", ">= 1x", rate >= TARGET, spread=m.spread,
                       notes=f"{n} bodies x 1000 events; CPU-bound rate {cpu_rate:,.0f} events/CPU-s; "
                       f"load {os.getloadavg()[0]:.1f}", extra={"cpu_rate": cpu_rate}))


def run_over_http(n: int, tmp_path: Path, repeat: int = 3) -> BenchRow:
    """``n`` 1000-event bodies posted by two keep-alive threads to a ``toolkit sandbox`` process."""
    bodies = [_body(i) for i in range(n)]
    cfg = tmp_path / "install.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "toolkit", "-q", "sandbox", "--port", "0", "--data", str(tmp_path / "state"),
         "--datafile", str(FIXTURE), "--config-out", str(cfg)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        for line in proc.stdout:
            if line.startswith("Ctrl-C"):
                break
        url = json.loads(cfg.read_text())["config"]["event_endpoint"]
        admin = url.replace("/v1/events", "/admin")
        server = psutil.Process(proc.pid)

        def send(chunk: list[bytes]) -> None:
            with requests.Session() as s:
                for data in chunk:
                    r = s.post(url, data=data, headers={"Content-Type": "application/json"}, timeout=60)
                    assert r.status_code == 204, r.text

        wall: list[float] = []  # until the last 204
        cpu: list[float] = []  # server CPU until the last 204
        settled: list[float] = []  # until /admin/stats answers: every event counted and deduplicated
        settled_cpu: list[float] = []

        def run() -> None:
            requests.post(f"{admin}/reset", timeout=60)
            c0 = sum(server.cpu_times()[:2])
            threads = [threading.Thread(target=send, args=(bodies[i::2],)) for i in range(2)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall.append(time.perf_counter() - t0)
            cpu.append(sum(server.cpu_times()[:2]) - c0)
            stats = requests.get(f"{admin}/stats", timeout=600).json()
            settled.append(time.perf_counter() - t0)
            settled_cpu.append(sum(server.cpu_times()[:2]) - c0)
            assert stats["events_stored"] == n * 1000 and stats["duplicates"] == 0

        measure(run, repeat=repeat)
        m = Measurement(wall)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    rate = n * 1000 / m.median
    # another process's CPU is counted in clock ticks: a tiny run can read 0; below one tick it
    # counts as one (the rate is then a lower bound)
    server_cpu_rate = n * 1000 / max(_median(cpu), _TICK)
    settled_rate = n * 1000 / _median(settled)
    settled_cpu_rate = n * 1000 / max(_median(settled_cpu), _TICK)
    return (BenchRow("sandbox ingest over HTTP (1000-event bodies)", rate, TARGET, "events/s",
                       "target 100k events/s", ">= 1x", rate >= TARGET, spread=m.spread,
                       notes=f"until the last 204; server CPU-bound rate {server_cpu_rate:,.0f} events/CPU-s; "
                       f"until stats answer {settled_rate:,.0f} events/s ({settled_cpu_rate:,.0f} events/CPU-s); "
                       f"load {os.getloadavg()[0]:.1f}",
                       extra={"server_cpu_rate": server_cpu_rate, "settled_rate": settled_rate,
                              "settled_cpu_rate": settled_cpu_rate}))
