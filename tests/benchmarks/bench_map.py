"""Mapping throughput and memory: load + map + serialize bodies vs building the same events with the SDK.

Measured side by side in one run on the same machine, each side repeated (median and spread):

- toolkit: what a streaming replay runs: ``iter_mapped(whole=False)`` (the export cut here, loaded
  and mapped in worker processes with the default ``workers``, each chunk as up to 4 pieces handed
  back as they are mapped) -> ``iter_bodies`` per piece here, events/s over the whole export
  (every Optimizely event ends up in a serialized body);
- optimizely-sdk: the same mapped events built one by one with ``UserEventFactory``
  (``create_conversion_event`` / ``create_impression_event``) + ``EventFactory.create_log_event``
  and serialized with ``json.dumps`` (what its dispatcher sends), on a slice: it is far slower.
  The SDK is handed ready-made Python values, so it does no loading or mapping at all.

Both wall and CPU time are recorded (the toolkit's CPU is this process's plus the map workers'): on
a shared, loaded machine the CPU-time ratio is the steadier one. Peak memory (RSS summed over the
process tree, sampled with psutil) of the ``toolkit map`` command runs in a subprocess at two sizes
(default 1M and 10M rows).

Targets (issue 3, issue 10 rows 1 and 6): toolkit >= 10x the SDK path; ``toolkit map`` peak RSS
<= 2 GB and growing < 25% from 1M to 10M rows. Sizes: ``BENCH_MAP_EVENTS`` (default 1000000),
``BENCH_MAP_SDK_EVENTS`` (40000 rows: ~2 s per repeat; with half that, ~1 s slices spread 43-53% on
a shared VM), ``BENCH_MAP_REPEAT`` (5), ``BENCH_MAP_MEMORY_ROWS``
("1000000,10000000"; empty to skip). ``tests/mapping/test_bench_map_small.py`` runs it tiny.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest

from tests.benchmarks.harness import add_rss_rows, peak_rss_tree, pool_workers, settle, spread_of

N_EVENTS = int(os.environ.get("BENCH_MAP_EVENTS", "1000000"))
SDK_EVENTS = int(os.environ.get("BENCH_MAP_SDK_EVENTS", "40000"))
REPEAT = int(os.environ.get("BENCH_MAP_REPEAT", "5"))
MEMORY_ROWS = tuple(int(x) for x in os.environ.get("BENCH_MAP_MEMORY_ROWS", "1000000,10000000").split(",") if x)
TARGET = 10.0


@dataclass(frozen=True)
class MapBench:
    rows_in: int
    events: int  # Optimizely events serialized into bodies (per run)
    bodies: int
    body_bytes: int
    toolkit_seconds: list[float]  # wall, one per repeat
    toolkit_cpu: list[float]  # this process's CPU plus the map workers', one per repeat
    sdk_events: int
    sdk_seconds: list[float]
    sdk_cpu: list[float]
    phases: dict[str, float]  # median wall seconds getting mapped chunks, building bodies
    phases_cpu: dict[str, float] = field(default_factory=dict)

    @property
    def toolkit_eps(self) -> float:
        return self.events / statistics.median(self.toolkit_seconds)

    @property
    def sdk_eps(self) -> float:
        return self.sdk_events / statistics.median(self.sdk_seconds)

    @property
    def ratio(self) -> float:
        return self.toolkit_eps / self.sdk_eps if self.sdk_eps else 0.0

    @property
    def cpu_ratio(self) -> float:
        """The same ratio on CPU time (steadier when other work shares the machine)."""
        tk = self.events / statistics.median(self.toolkit_cpu)
        return tk / (self.sdk_events / statistics.median(self.sdk_cpu))

    @property
    def spread(self) -> float:
        return max(spread_of(self.toolkit_seconds), spread_of(self.sdk_seconds))

    @property
    def main_cpu(self) -> float:
        """This process's CPU (loading, handing chunks off, bodies): the critical path as long as the
        map workers keep up, so the wall time an idle machine would give, roughly."""
        return sum(v for k, v in self.phases_cpu.items() if k != "workers")

    def lines(self) -> list[str]:
        return [
            f"toolkit load + map + bodies: {self.rows_in:,} rows -> {self.events:,} events in {self.bodies:,} "
            f"bodies ({self.body_bytes / 1e6:,.1f} MB): median {statistics.median(self.toolkit_seconds):.1f} s wall "
            f"({statistics.median(self.toolkit_cpu):.1f} s CPU) = {self.toolkit_eps:,.0f} events/s",
            f"optimizely-sdk UserEventFactory + EventFactory + json.dumps: {self.sdk_eps:,.0f} events/s "
            f"({self.sdk_events:,} events)",
            f"ratio toolkit / sdk = {self.ratio:.1f}x wall, {self.cpu_ratio:.1f}x CPU (target >= {TARGET:g}x); "
            f"spread {self.spread:.0%}",
            "phases (wall / CPU s): " + ", ".join(f"{k} {v:.1f}/{self.phases_cpu.get(k, 0):.1f}"
                                                  for k, v in self.phases.items())
            + (f"; this process's CPU {self.main_cpu:.1f} s = {self.events / self.main_cpu:,.0f} events/s "
               "(the critical path while the workers keep up)" if self.main_cpu else ""),
        ]


def write_export(path: Path, n: int, *, seed: int = 3) -> Path:
    """A Datafly JSONL export: per person an activation, product adds, an order; some page views."""
    rnd = random.Random(seed)
    ts = 1_767_600_000_000
    written = 0
    with open(path, "wb") as fh:
        person = 0
        while written < n:
            person += 1
            anon = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
            user = f"user-{person}" if person % 2 else None
            recs = [("page", None, None),
                    ("track", "Experiment Viewed", {"experiment_id": "50001",
                                                    "variation_id": rnd.choice(["70001", "70002"])})]
            recs += [("track", "Product Added", {"sku": f"sku-{rnd.randrange(500)}", "price": rnd.randrange(100, 9999) / 100,
                                                 "currency": "GBP"}) for _ in range(rnd.randrange(1, 4))]
            recs.append(("track", "Order Completed", {"order_id": f"o-{person}", "total": f"{rnd.randrange(100, 99999) / 100:.2f}",
                                                      "currency": rnd.choice(["GBP", "USD", "EUR", "JPY"]) ,
                                                      "products": [{"sku": "a"}, {"sku": "b"}]}))
            lines = []
            for kind, name, props in recs:
                if written >= n:
                    break
                ts += rnd.randrange(1, 5000)
                rec = {"messageId": str(uuid.UUID(int=rnd.getrandbits(128), version=4)), "type": kind,
                       "anonymousId": anon, "userId": user,
                       "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts / 1000)) + f".{ts % 1000:03d}Z"}
                if name:
                    rec["event"] = name
                if props:
                    if props.get("currency") == "JPY" and "total" in props:
                        props = dict(props, total=str(int(float(props["total"]))))
                    rec["properties"] = props
                lines.append(orjson.dumps(rec))
                written += 1
            fh.write(b"\n".join(lines) + b"\n")
    return path


def _worker_cpu() -> dict[int, float]:
    """CPU seconds of this process's map workers so far, by pid."""
    import psutil

    out = {}
    for p in pool_workers():
        with contextlib.suppress(psutil.Error):
            out[p.pid] = sum(p.cpu_times()[:2])
    return out


def _toolkit_path(export: Path, datafile, chunk_rows: int) -> tuple[int, int, int, int, dict, dict]:
    """What a streaming replay runs: ``iter_mapped(whole=False)`` with its default workers (cutting
    here, loading and mapping in worker processes), then ``iter_bodies`` per piece here. Phases: ``load + map`` is
    this process's time to get each mapped chunk (loading, handing off, waiting), ``bodies`` its
    time building them; ``workers`` CPU is the worker processes' (their wall overlaps the others)."""
    from toolkit.blueprint import load_blueprint
    from toolkit.map_export import iter_mapped
    from toolkit.payload import iter_bodies

    blueprint = load_blueprint()
    rows_in = events = bodies = size = 0
    wall = {"load + map": 0.0, "bodies": 0.0}
    cpu = dict(wall)
    chunks = iter(iter_mapped(export, datafile, blueprint=blueprint, chunk_rows=chunk_rows, progress=False,
                              whole=False, graph_parts=False, body_order=True))
    before, seen = _worker_cpu(), {}

    def tick(phase: str, t: tuple[float, float]) -> tuple[float, float]:
        now = (time.perf_counter(), time.process_time())
        wall[phase] += now[0] - t[0]
        cpu[phase] += now[1] - t[1]
        return now

    t = (time.perf_counter(), time.process_time())
    while True:
        mc = next(chunks, None)
        t = tick("load + map", t)
        if mc is None:
            break
        rows_in += mc.rows_in
        for body in iter_bodies(mc.events, account_id=datafile.account_id, project_id=datafile.project_id,
                                revision=datafile.revision, anonymize_ip=datafile.anonymize_ip,
                                bot_filtering=datafile.bot_filtering):
            events += body.n_events
            bodies += 1
            size += body.size
        seen.update(_worker_cpu())  # every chunk handed back so far was mapped by then
        t = tick("bodies", t)
    cpu["workers"] = sum(v - before.get(pid, 0.0) for pid, v in seen.items())
    wall["workers"] = 0.0
    return rows_in, events, bodies, size, wall, cpu


def _sdk_rows(export: Path, datafile, n: int) -> list[dict]:
    """The first ``n`` rows of the export, mapped, as plain Python values for the SDK."""
    from toolkit.blueprint import load_blueprint
    from toolkit.exports import load_export
    from toolkit.mapping import map_events

    head = export.with_name("sdk-slice.jsonl")
    with open(export, "rb") as src, open(head, "wb") as dst:
        for i, line in enumerate(src):
            if i >= n:
                break
            dst.write(line)
    mapped = map_events(load_export(head).events, datafile, load_blueprint()).events
    rows = mapped.astype(object).where(mapped.notna(), None).to_dict("records")
    for r in rows:
        r["tags"] = orjson.loads(r["tags"]) if r["tags"] and r["tags"] != "{}" else None
    return rows


def _sdk_path(rows: list[dict], datafile) -> None:
    """Build + serialize ``rows`` one by one with the SDK (what it does per event)."""
    from optimizely.event.event_factory import EventFactory
    from optimizely.event.user_event_factory import UserEventFactory
    from optimizely.logger import NoOpLogger

    config, logger = datafile.project_config(), NoOpLogger()
    for r in rows:
        if r["kind"] == "impression":
            exp = config.get_experiment_from_id(r["experiment_id"])
            ue = UserEventFactory.create_impression_event(config, exp, r["variation_id"], r["flag_key"] or "",
                                                          r["rule_key"], r["rule_type"], bool(r["enabled"]),
                                                          r["visitor_id"], None, None)
        else:
            ue = UserEventFactory.create_conversion_event(config, r["key"], r["visitor_id"], None, r["tags"])
        json.dumps(EventFactory.create_log_event(ue, logger).params).encode()


def run_map_bench(tmp: Path, *, n_events: int = N_EVENTS, sdk_events: int = SDK_EVENTS,
                  chunk_rows: int = 200_000, repeat: int = REPEAT) -> MapBench:
    from tests.conftest import FIXTURES
    from toolkit.datafile import load_datafile

    datafile = load_datafile(FIXTURES / "datafile.json")
    export = write_export(tmp / "export.jsonl", n_events)
    settle()
    sdk_rows = _sdk_rows(export, datafile, min(sdk_events, n_events))
    tk_wall, tk_cpu, sdk_wall, sdk_cpu, phases = [], [], [], [], []
    for _ in range(repeat):  # interleaved, so both sides see the same machine load
        t0, c0 = time.perf_counter(), time.process_time()
        rows_in, events, bodies, size, wall, cpu = _toolkit_path(export, datafile, chunk_rows)
        tk_wall.append(time.perf_counter() - t0)
        tk_cpu.append(time.process_time() - c0 + cpu["workers"])
        phases.append((wall, cpu))
        t0, c0 = time.perf_counter(), time.process_time()
        _sdk_path(sdk_rows, datafile)
        sdk_wall.append(time.perf_counter() - t0)
        sdk_cpu.append(time.process_time() - c0)
    return MapBench(
        rows_in=rows_in, events=events, bodies=bodies, body_bytes=size, toolkit_seconds=tk_wall, toolkit_cpu=tk_cpu,
        sdk_events=len(sdk_rows), sdk_seconds=sdk_wall, sdk_cpu=sdk_cpu,
        phases={k: statistics.median(p[0][k] for p in phases) for k in phases[0][0]},
        phases_cpu={k: statistics.median(p[1][k] for p in phases) for k in phases[0][1]},
    )


def peak_rss_of_map(export: Path, datafile: Path, out_dir: Path, *, interval: float = 0.05) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of ``toolkit map`` on ``export``, sampled with psutil over the
    process tree (the command plus its map workers)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "toolkit", "map", "--export", str(export), "--datafile", str(datafile),
           "--out", str(out_dir / "events.jsonl"), "--no-progress"]
    return peak_rss_tree(cmd, interval=interval)


def run_memory_bench(tmp: Path, sizes: tuple[int, ...] = MEMORY_ROWS) -> dict[int, tuple[float, float]]:
    """rows -> (peak RSS MB, seconds) of ``toolkit map`` (exports generated here, deleted after)."""
    from tests.conftest import FIXTURES

    out = {}
    for rows in sizes:
        export = write_export(tmp / f"mem-{rows}.jsonl", rows)
        try:
            out[rows] = peak_rss_of_map(export, FIXTURES / "datafile.json", tmp / f"mem-{rows}")
        finally:
            export.unlink(missing_ok=True)
            (tmp / f"mem-{rows}" / "events.jsonl").unlink(missing_ok=True)
    return out


@pytest.mark.bench
@pytest.mark.timeout(7200)  # generating and mapping 10M rows takes a while on a laptop
def test_bench_map(tmp_path, bench, request):
    from tests.benchmarks.harness import BenchRow

    tiny = request.config.getoption("--bench-scale") == "tiny"
    result = run_map_bench(tmp_path, n_events=20_000 if tiny else N_EVENTS, sdk_events=2_000 if tiny else SDK_EVENTS)
    for line in result.lines():
        print(line)
    bench.add(BenchRow(
        name=f"map + bodies, {result.rows_in:,} events", toolkit=result.toolkit_eps, anchor=result.sdk_eps,
        unit="events/s", anchor_name="optimizely-sdk UserEventFactory+EventFactory one by one",
        target=f">= {TARGET:g}x", met=result.ratio >= TARGET, spread=result.spread,
        notes=f"CPU-time ratio {result.cpu_ratio:.1f}x (this process + map workers: "
              f"{', '.join(f'{k} {v:.1f} s' for k, v in result.phases_cpu.items())}); this process's CPU "
              f"{result.main_cpu:.1f} s = {result.events / result.main_cpu:,.0f} events/s",
        extra={"bodies": result.bodies, "events": result.events, "phases_s": result.phases,
               "phases_cpu_s": result.phases_cpu, "toolkit_s": result.toolkit_seconds,
               "toolkit_cpu_s": result.toolkit_cpu, "sdk_s": result.sdk_seconds, "sdk_cpu_s": result.sdk_cpu},
    ))
    assert result.events > 0 and result.bodies > 0
    sizes = (2_000, 20_000) if tiny else MEMORY_ROWS
    if not sizes:
        return
    add_rss_rows(bench, "toolkit map", run_memory_bench(tmp_path, sizes), notes="summed over the process tree")
