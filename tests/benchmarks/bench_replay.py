"""Replay throughput: the toolkit end to end vs the optimizely-sdk path vs the sink's ceiling.

All three post to the same minimal local sink (its own process), in one run:

- toolkit: map the export + build bodies + ``deliver`` (concurrency 8, SQLite ledger), events/s
  over the whole of it;
- optimizely-sdk: ``UserEventFactory`` conversion events, grouped 10 per ``EventFactory`` log event
  (the BatchEventProcessor default), each sent by the SDK's ``EventDispatcher``;
- ceiling: the toolkit's pre-serialized bodies posted as fast as possible (8 threads, keep-alive,
  no mapping, no ledger).

Target (issue 5): toolkit >= 20x the SDK path. ``make bench`` runs it with 1M events;
``tests/delivery/test_bench_replay_small.py`` runs it tiny so it cannot rot.
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from tests.delivery.sink import Sink

N_EVENTS = int(os.environ.get("BENCH_REPLAY_EVENTS", "1000000"))  # rows of the generated export
SDK_EVENTS = 20_000  # the SDK path is measured on a slice: it is ~two orders of magnitude slower
TARGET = 20.0


@dataclass(frozen=True)
class ReplayBench:
    events: int  # events the toolkit sent
    toolkit_seconds: float
    toolkit_eps: float
    sdk_events: int
    sdk_eps: float
    ceiling_eps: float
    sink_events: int  # events the sink counted over the three runs
    expected_sink_events: int
    delivered: int

    @property
    def vs_sdk(self) -> float:
        return self.toolkit_eps / self.sdk_eps if self.sdk_eps else 0.0

    @property
    def vs_ceiling(self) -> float:
        return self.toolkit_eps / self.ceiling_eps if self.ceiling_eps else 0.0

    def lines(self) -> list[str]:
        return [
            f"toolkit end to end (map + build + send): {self.events:,} events in {self.toolkit_seconds:.1f} s "
            f"= {self.toolkit_eps:,.0f} events/s",
            f"optimizely-sdk path (EventFactory x10 + EventDispatcher): {self.sdk_eps:,.0f} events/s "
            f"({self.sdk_events:,} events)",
            f"sink ceiling (pre-serialized bodies, 8 threads): {self.ceiling_eps:,.0f} events/s",
            f"ratio toolkit / sdk = {self.vs_sdk:.1f}x (target >= {TARGET:g}x); "
            f"toolkit / ceiling = {self.vs_ceiling:.0%}",
        ]


def _sdk_path(conversions, datafile, url: str) -> float:
    """events/s of the SDK's own event path for these conversions, against ``url``."""
    from optimizely.event.event_factory import EventFactory
    from optimizely.event.user_event_factory import UserEventFactory
    from optimizely.event_dispatcher import EventDispatcher

    config = datafile.project_config()
    sdk_log = logging.getLogger("bench.optimizely-sdk")
    keys = conversions["key"].tolist()
    visitors = conversions["visitor_id"].tolist()
    tags = [orjson.loads(t) if t else {} for t in conversions["tags"].tolist()]
    t0 = time.perf_counter()
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
    return len(keys) / (time.perf_counter() - t0)


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


def run_replay_bench(work_dir: Path, *, events: int = N_EVENTS, sdk_events: int = SDK_EVENTS,
                     concurrency: int = 8) -> ReplayBench:
    from toolkit.datafile import load_datafile
    from toolkit.delivery import deliver
    from toolkit.mapping import map_export
    from toolkit.payload import iter_bodies
    from toolkit.sample import generate_sample

    sample = Path(work_dir) / "sample"
    generate_sample(sample, events=events, seed=7)
    datafile = load_datafile(str(sample / "datafile.json"))

    def bodies_of(frame):
        return iter_bodies(frame, account_id=datafile.account_id, project_id=datafile.project_id,
                           revision=datafile.revision, anonymize_ip=datafile.anonymize_ip,
                           bot_filtering=datafile.bot_filtering)

    with Sink() as sink:
        t0 = time.perf_counter()
        mapped = map_export(sample / "export.jsonl", datafile, progress=False)
        report = deliver(bodies_of(mapped.events), endpoint=sink.url, ledger=Path(work_dir) / "bench.sqlite",
                         concurrency=concurrency, progress=False)
        toolkit_seconds = time.perf_counter() - t0
        assert report.exit_code == 0, report.summary_line()

        prebuilt = list(bodies_of(mapped.events))
        ceiling = _ceiling(prebuilt, sink.url, concurrency)

        conv = mapped.events[mapped.events["kind"] == "conversion"].head(sdk_events)
        sdk_eps = _sdk_path(conv, datafile, sink.url)
        counted = sink.stats()["events"]

    return ReplayBench(
        events=report.events_total, toolkit_seconds=toolkit_seconds,
        toolkit_eps=report.events_total / toolkit_seconds, sdk_events=len(conv), sdk_eps=sdk_eps,
        ceiling_eps=ceiling, sink_events=counted,
        expected_sink_events=report.events_total + sum(b.n_events for b in prebuilt) + len(conv),
        delivered=report.delivered,
    )


@pytest.mark.bench
@pytest.mark.timeout(3600)  # generating and mapping 1M rows takes minutes on a laptop
def test_bench_replay(tmp_path, bench):
    from tests.benchmarks.harness import BenchRow

    result = run_replay_bench(tmp_path)
    for line in result.lines():
        print(line)
    assert result.sink_events == result.expected_sink_events and result.delivered == result.events
    bench.add(BenchRow(f"replay {N_EVENTS:,} export rows end to end vs optimizely-sdk", result.toolkit_eps, result.sdk_eps,
                           "events/s", "optimizely-sdk EventFactory x10 + EventDispatcher, same sink",
                           f">= {TARGET:g}x", result.vs_sdk >= TARGET,
                           notes=f"sink ceiling {result.ceiling_eps:,.0f} events/s "
                                 f"(toolkit at {result.vs_ceiling:.0%} of it)"))
