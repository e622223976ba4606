"""Replay throughput: the toolkit end to end vs the optimizely-sdk path vs the sink's ceiling; and
the peak memory of ``toolkit replay --dry-run``.

All three throughput paths post to the same minimal local sink (its own process), in one run:

- toolkit: the product path, ``toolkit replay --export ... --endpoint SINK`` in a subprocess (load,
  map, build bodies and send, streamed chunk by chunk, concurrency 8, SQLite ledger), events/s
  over the whole command, interpreter start included; its CPU time (the command and its
  children: the map workers are forked by the command) is recorded too, the steadier figure on a
  shared machine;
- optimizely-sdk: ``UserEventFactory`` conversion events, grouped 10 per ``EventFactory`` log event
  (the BatchEventProcessor default), each sent by the SDK's ``EventDispatcher``;
- ceiling: the toolkit's pre-serialized bodies posted as fast as possible (8 threads, keep-alive,
  no mapping, no ledger).

Memory (issue 10 row 6): peak RSS, summed over the process tree (mapping workers included) and
sampled with psutil, of ``toolkit replay --dry-run`` on generated exports of 1M and 10M rows.

The three paths are measured ``BENCH_REPLAY_REPEAT`` times (default 5), interleaved so each sees the
same machine load; figures are medians, with the spread ((max - min) / median) of the toolkit and
SDK repeats. Each toolkit repeat is a new run with its own ledger.

Targets: toolkit >= 20x the SDK path (issue 5); peak RSS <= 2 GB and growing < 25% from 1M to 10M
rows. Sizes: ``BENCH_REPLAY_EVENTS`` (export rows, default 1000000), ``BENCH_REPLAY_MEMORY_ROWS``
("1000000,10000000"; empty to skip). ``tests/delivery/test_bench_replay_small.py`` runs it tiny.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from tests.benchmarks.harness import add_rss_rows, peak_rss_tree, settle, spread_of
from tests.delivery.sink import Sink

N_EVENTS = int(os.environ.get("BENCH_REPLAY_EVENTS", "1000000"))  # rows of the generated export
SDK_EVENTS = 20_000  # the SDK path is measured on a slice: it is ~two orders of magnitude slower
REPEAT = int(os.environ.get("BENCH_REPLAY_REPEAT", "5"))
MEMORY_ROWS = tuple(int(x) for x in os.environ.get("BENCH_REPLAY_MEMORY_ROWS", "1000000,10000000").split(",") if x)
TARGET = 20.0
KEY = "BenchReplaySdkKey"  # the toolkit reads the SDK key from the environment


@dataclass(frozen=True)
class ReplayBench:
    events: int  # events the toolkit sent (per repeat)
    toolkit_runs: list[tuple[float, float]]  # (wall s, CPU s of the command and its children) per repeat
    sdk_events: int
    sdk_runs: list[tuple[float, float]]  # (events/s, CPU s) per repeat
    ceiling_runs: list[float]  # events/s per repeat
    sink: dict[str, dict[str, int]]  # what the sink received over every run: path -> requests, body bytes
    expected_sink: dict[str, dict[str, int]]  # what was sent there: the ledgers' requests and the prebuilt
    # bodies (toolkit and ceiling), one request per 10 events (SDK)
    delivered: int  # events delivered, over every toolkit repeat

    @property
    def sink_ok(self) -> bool:
        """The sink received exactly what was sent: every expected count per path."""
        return all(self.sink.get(p, {}).get(k) == v for p, counts in self.expected_sink.items()
                   for k, v in counts.items())

    @property
    def toolkit_seconds(self) -> float:
        return statistics.median(w for w, _ in self.toolkit_runs)

    @property
    def toolkit_cpu(self) -> float:
        return statistics.median(c for _, c in self.toolkit_runs)

    @property
    def toolkit_eps(self) -> float:
        return self.events / self.toolkit_seconds

    @property
    def sdk_eps(self) -> float:
        return statistics.median(e for e, _ in self.sdk_runs)

    @property
    def sdk_cpu(self) -> float:
        return statistics.median(c for _, c in self.sdk_runs)

    @property
    def ceiling_eps(self) -> float:
        return statistics.median(self.ceiling_runs)

    @property
    def spread(self) -> float:
        """The larger spread of the toolkit's and the SDK's repeats."""
        return max(spread_of([w for w, _ in self.toolkit_runs]), spread_of([e for e, _ in self.sdk_runs]))

    @property
    def vs_sdk(self) -> float:
        return self.toolkit_eps / self.sdk_eps if self.sdk_eps else 0.0

    @property
    def cpu_ratio(self) -> float:
        """events per CPU second, toolkit / SDK: steadier than wall time on a shared machine."""
        if not (self.toolkit_cpu and self.sdk_cpu and self.sdk_events):
            return 0.0
        return (self.events / self.toolkit_cpu) / (self.sdk_events / self.sdk_cpu)

    @property
    def vs_ceiling(self) -> float:
        return self.toolkit_eps / self.ceiling_eps if self.ceiling_eps else 0.0

    def lines(self) -> list[str]:
        n = len(self.toolkit_runs)
        return [
            f"toolkit replay end to end (load + map + build + send + ledger): {self.events:,} events, median of "
            f"{n}: {self.toolkit_seconds:.1f} s (CPU {self.toolkit_cpu:.1f} s) = {self.toolkit_eps:,.0f} events/s "
            f"(runs: {', '.join(f'{w:.1f}' for w, _ in self.toolkit_runs)} s)",
            f"optimizely-sdk path (EventFactory x10 + EventDispatcher): {self.sdk_eps:,.0f} events/s "
            f"({self.sdk_events:,} events, CPU {self.sdk_cpu:.1f} s)",
            f"sink ceiling (pre-serialized bodies, 8 threads): {self.ceiling_eps:,.0f} events/s",
            f"ratio toolkit / sdk = {self.vs_sdk:.1f}x (target >= {TARGET:g}x; per CPU second "
            f"{self.cpu_ratio:.1f}x); toolkit / ceiling = {self.vs_ceiling:.0%}; spread {self.spread:.0%}",
        ]


def _sdk_path(conversions, datafile, url: str) -> tuple[float, float]:
    """(events/s, CPU seconds) of the SDK's own event path for these conversions, against ``url``."""
    from optimizely.event.event_factory import EventFactory
    from optimizely.event.user_event_factory import UserEventFactory
    from optimizely.event_dispatcher import EventDispatcher

    config = datafile.project_config()
    sdk_log = logging.getLogger("bench.optimizely-sdk")
    keys = conversions["key"].tolist()
    visitors = conversions["visitor_id"].tolist()
    tags = [orjson.loads(t) if t else {} for t in conversions["tags"].tolist()]
    t0, c0 = time.perf_counter(), time.process_time()
    batch = []
    for key, vid, tag in zip(keys, visitors, tags, strict=True):
        batch.append(UserEventFactory.create_conversion_event(config, key, vid, {}, tag))
        if len(batch) == 10:
            log_event = EventFactory.create_log_event(batch, sdk_log)
            log_event.url = url
            EventDispatcher.dispatch_event(log_event)
            batch = []
    if batch:
        log_event = EventFactory.create_log_event(batch, sdk_log)
        log_event.url = url
        EventDispatcher.dispatch_event(log_event)
    return len(keys) / (time.perf_counter() - t0), time.process_time() - c0


def _ceiling(bodies, url: str, concurrency: int = 8) -> float:
    from toolkit.delivery import RequestsTransport

    headers = {"Content-Type": "application/json"}
    with RequestsTransport(pool_size=concurrency) as transport:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            statuses = list(pool.map(lambda b: transport.send(url, b.data, headers, 30.0).status, bodies))
        seconds = time.perf_counter() - t0
    assert set(statuses) == {204}
    return sum(b.n_events for b in bodies) / seconds


def _install(folder: Path, datafile) -> Path:
    """An install config for the datafile's account and project (the SDK key comes from the env)."""
    path = folder / "install.json"
    path.write_text(json.dumps({"config": {"account_id": datafile.account_id, "project_id": datafile.project_id}}))
    return path


def _replay_cmd(export: Path, datafile: Path, install: Path, ledger: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "toolkit", "replay", "--export", str(export), "--datafile", str(datafile),
            "--config", str(install), "--ledger", str(ledger), "--no-progress", *extra]


def _env() -> dict[str, str]:
    return dict(os.environ, OPTIMIZELY_SDK_KEY=KEY)


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_replay_bench(work_dir: Path, *, events: int = N_EVENTS, sdk_events: int = SDK_EVENTS,
                     concurrency: int = 8, repeat: int = REPEAT) -> ReplayBench:
    from toolkit.datafile import load_datafile
    from toolkit.ledger import read_ledger
    from toolkit.mapping import map_export
    from toolkit.payload import iter_bodies
    from toolkit.sample import generate_sample

    sample = Path(work_dir) / "sample"
    generate_sample(sample, events=events, seed=7)
    datafile = load_datafile(str(sample / "datafile.json"))
    install = _install(sample, datafile)
    # the ceiling and the SDK slice need the mapped events and bodies: built here, not timed
    mapped = map_export(sample / "export.jsonl", datafile, progress=False)
    prebuilt = list(iter_bodies(mapped.events, account_id=datafile.account_id, project_id=datafile.project_id,
                                revision=datafile.revision, anonymize_ip=datafile.anonymize_ip,
                                bot_filtering=datafile.bot_filtering))
    conv = mapped.events[mapped.events["kind"] == "conversion"].head(sdk_events)
    del mapped
    settle()

    toolkit_runs, sdk_runs, ceiling_runs = [], [], []
    sent = delivered = sent_requests = sent_bytes = 0
    sdk_path = "/sdk/v1/events"  # counted apart: the SDK's bodies are not kept (holding them slowed it ~8%)
    with Sink() as sink:
        for i in range(repeat):  # interleaved: every path sees the same machine load
            ledger = Path(work_dir) / ("bench.sqlite" if i == 0 else f"bench-{i}.sqlite")
            cmd = _replay_cmd(sample / "export.jsonl", sample / "datafile.json", install, ledger,
                              "--concurrency", str(concurrency), "--endpoint", sink.url)
            c0, t0 = _children_cpu(), time.perf_counter()
            done = subprocess.run(cmd, env=_env(), capture_output=True, text=True)
            toolkit_runs.append((time.perf_counter() - t0, _children_cpu() - c0))
            assert done.returncode == 0, done.stderr[-2000:]
            led = read_ledger(ledger)
            sent = len(led.events)
            delivered += int(led.events["status"].eq("delivered").sum())
            sent_requests += len(led.requests)  # every attempt, as the sink sees them
            sent_bytes += int(led.requests["bytes"].sum())
            ceiling_runs.append(_ceiling(prebuilt, sink.url, concurrency))
            sent_requests += len(prebuilt)
            sent_bytes += sum(len(b.data) for b in prebuilt)
            sdk_runs.append(_sdk_path(conv, datafile, sink.url_for(sdk_path)))
        received = sink.stats()
    sdk_requests = repeat * -(-len(conv) // 10)

    return ReplayBench(
        events=sent, toolkit_runs=toolkit_runs, sdk_events=len(conv), sdk_runs=sdk_runs, ceiling_runs=ceiling_runs,
        sink={p: received.get(p, {"requests": 0, "bytes": 0}) for p in ("/v1/events", sdk_path)},
        expected_sink={"/v1/events": {"requests": sent_requests, "bytes": sent_bytes},
                       sdk_path: {"requests": sdk_requests}},
        delivered=delivered,
    )


def run_replay_memory_bench(tmp: Path, sizes: tuple[int, ...] = MEMORY_ROWS) -> dict[int, tuple[float, float]]:
    """rows -> (peak RSS MB, seconds) of ``toolkit replay --dry-run`` (exports and ledgers made here,
    deleted after)."""
    from tests.benchmarks.bench_map import write_export
    from tests.conftest import FIXTURES
    from toolkit.datafile import load_datafile

    datafile = FIXTURES / "datafile.json"
    install = _install(tmp, load_datafile(str(datafile)))
    out = {}
    for rows in sizes:
        export = write_export(tmp / f"replay-mem-{rows}.jsonl", rows)
        ledger = tmp / f"replay-mem-{rows}.sqlite"
        try:
            out[rows] = peak_rss_tree(_replay_cmd(export, datafile, install, ledger, "--dry-run"), _env())
        finally:
            for f in (export, *tmp.glob(f"{ledger.name}*")):
                f.unlink(missing_ok=True)
    return out


@pytest.mark.bench
@pytest.mark.timeout(7200)  # generating 1M rows and the 10M-row memory run take a while on a laptop
def test_bench_replay(tmp_path, bench, request):
    from tests.benchmarks.harness import BenchRow

    tiny = request.config.getoption("--bench-scale") == "tiny"
    n = 2_000 if tiny else N_EVENTS
    result = run_replay_bench(tmp_path, events=n, sdk_events=200 if tiny else SDK_EVENTS)
    for line in result.lines():
        print(line)
    assert result.sink_ok, (result.sink, result.expected_sink)
    assert result.delivered == result.events * len(result.toolkit_runs)
    bench.add(BenchRow(f"replay {n:,} export rows end to end vs optimizely-sdk", result.toolkit_eps, result.sdk_eps,
                       "events/s", "optimizely-sdk EventFactory x10 + EventDispatcher, same sink",
                       f">= {TARGET:g}x", result.vs_sdk >= TARGET, spread=result.spread,
                       notes=f"`toolkit replay` command; CPU {result.toolkit_cpu:.1f} s for {result.toolkit_seconds:.1f} s "
                             f"wall; per CPU second {result.cpu_ratio:.1f}x the SDK; sink ceiling {result.ceiling_eps:,.0f} events/s "
                             f"(toolkit at {result.vs_ceiling:.0%} of it)",
                       extra={"events": result.events, "seconds": result.toolkit_seconds, "cpu_s": result.toolkit_cpu,
                              "sdk_cpu_s": result.sdk_cpu, "cpu_ratio": result.cpu_ratio,
                              "ceiling_eps": result.ceiling_eps, "runs": result.toolkit_runs,
                              "sdk_runs": result.sdk_runs, "ceiling_runs": result.ceiling_runs}))
    sizes = (2_000, 20_000) if tiny else MEMORY_ROWS
    if not sizes:
        return
    add_rss_rows(bench, "toolkit replay --dry-run", run_replay_memory_bench(tmp_path, sizes),
                 notes="summed over the process tree")
