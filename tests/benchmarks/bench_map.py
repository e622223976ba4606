"""Mapping throughput: load + map + serialize bodies vs building the same events with the SDK.

Measured side by side in one run on the same machine:

- toolkit: ``iter_export`` (JSONL) -> ``map_events`` -> ``iter_bodies``, chunk by chunk, events/s
  over the whole export (every Optimizely event ends up in a serialized body);
- optimizely-sdk: the same mapped events built one by one with ``UserEventFactory``
  (``create_conversion_event`` / ``create_impression_event``) + ``EventFactory.create_log_event``
  and serialized with ``json.dumps`` (what its dispatcher sends), on a slice: it is far slower.
  The SDK is handed ready-made Python values, so it does no loading or mapping at all.

Target (issue 3): toolkit >= 10x the SDK path; peak memory for 1M events <= 2 GB.
``make bench`` runs it with 1M events; ``tests/mapping/test_bench_map_small.py`` runs it tiny.
"""

from __future__ import annotations

import json
import random
import resource
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

N_EVENTS = 1_000_000
SDK_EVENTS = 20_000
TARGET = 10.0


@dataclass(frozen=True)
class MapBench:
    rows_in: int
    events: int  # Optimizely events serialized into bodies
    bodies: int
    body_bytes: int
    toolkit_seconds: float
    toolkit_eps: float
    sdk_events: int
    sdk_eps: float
    peak_rss_mb: float
    phases: dict[str, float]  # seconds in loading, mapping, building bodies

    @property
    def ratio(self) -> float:
        return self.toolkit_eps / self.sdk_eps if self.sdk_eps else 0.0

    @property
    def map_and_bodies_ratio(self) -> float:
        """The ratio without the loader's time: this stage's own part."""
        own = self.phases["map"] + self.phases["bodies"]
        return (self.events / own) / self.sdk_eps if own and self.sdk_eps else 0.0

    def lines(self) -> list[str]:
        return [
            f"toolkit load + map + bodies: {self.rows_in:,} rows -> {self.events:,} events in {self.bodies:,} "
            f"bodies ({self.body_bytes / 1e6:,.1f} MB) in {self.toolkit_seconds:.1f} s = {self.toolkit_eps:,.0f} events/s",
            f"optimizely-sdk UserEventFactory + EventFactory + json.dumps: {self.sdk_eps:,.0f} events/s "
            f"({self.sdk_events:,} events)",
            f"ratio toolkit / sdk = {self.ratio:.1f}x (target >= {TARGET:g}x); peak RSS {self.peak_rss_mb:,.0f} MB",
            "phases: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.phases.items())
            + f"; map + bodies alone vs sdk = {self.map_and_bodies_ratio:.1f}x",
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
                fh.write(orjson.dumps(rec) + b"\n")
                written += 1
    return path


def _toolkit_path(export: Path, datafile, chunk_rows: int) -> tuple[int, int, int, int, dict[str, float]]:
    from toolkit.blueprint import load_blueprint
    from toolkit.exports import iter_export
    from toolkit.mapping import map_events
    from toolkit.payload import iter_bodies

    blueprint = load_blueprint()
    rows_in = events = bodies = size = 0
    phases = {"load": 0.0, "map": 0.0, "bodies": 0.0}
    chunks = iter(iter_export(export, chunk_rows=chunk_rows, revenue_keys=blueprint.revenue_keys))
    while True:
        t0 = time.perf_counter()
        chunk = next(chunks, None)
        t1 = time.perf_counter()
        phases["load"] += t1 - t0
        if chunk is None:
            break
        rows_in += chunk.rows_in
        mapped = map_events(chunk.events, datafile, blueprint).events
        t2 = time.perf_counter()
        phases["map"] += t2 - t1
        for body in iter_bodies(mapped, account_id=datafile.account_id, project_id=datafile.project_id,
                                revision=datafile.revision, anonymize_ip=datafile.anonymize_ip,
                                bot_filtering=datafile.bot_filtering):
            events += body.n_events
            bodies += 1
            size += body.size
        phases["bodies"] += time.perf_counter() - t2
    return rows_in, events, bodies, size, phases


def _sdk_path(export: Path, datafile, n: int) -> tuple[int, float]:
    """events/s of building + serializing the first ``n`` mapped events one by one with the SDK."""
    from optimizely.event.event_factory import EventFactory
    from optimizely.event.user_event_factory import UserEventFactory
    from optimizely.logger import NoOpLogger

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
    config, logger = datafile.project_config(), NoOpLogger()
    rows = mapped.astype(object).where(mapped.notna(), None).to_dict("records")
    for r in rows:
        r["tags"] = orjson.loads(r["tags"]) if r["tags"] and r["tags"] != "{}" else None
    t0 = time.perf_counter()
    for r in rows:
        if r["kind"] == "impression":
            exp = config.get_experiment_from_id(r["experiment_id"])
            ue = UserEventFactory.create_impression_event(config, exp, r["variation_id"], r["flag_key"] or "",
                                                          r["rule_key"], r["rule_type"], bool(r["enabled"]),
                                                          r["visitor_id"], None, None)
        else:
            ue = UserEventFactory.create_conversion_event(config, r["key"], r["visitor_id"], None, r["tags"])
        json.dumps(EventFactory.create_log_event(ue, logger).params).encode()
    return len(rows), len(rows) / (time.perf_counter() - t0)


def run_map_bench(tmp: Path, *, n_events: int = N_EVENTS, sdk_events: int = SDK_EVENTS,
                  chunk_rows: int = 200_000) -> MapBench:
    from tests.conftest import FIXTURES
    from toolkit.datafile import load_datafile

    datafile = load_datafile(FIXTURES / "datafile.json")
    export = write_export(tmp / "export.jsonl", n_events)
    t0 = time.perf_counter()
    rows_in, events, bodies, size, phases = _toolkit_path(export, datafile, chunk_rows)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux
    sdk_n, sdk_eps = _sdk_path(export, datafile, min(sdk_events, n_events))
    return MapBench(rows_in=rows_in, events=events, bodies=bodies, body_bytes=size, toolkit_seconds=seconds,
                    toolkit_eps=events / seconds, sdk_events=sdk_n, sdk_eps=sdk_eps, peak_rss_mb=peak,
                    phases=phases)


@pytest.mark.bench
def test_bench_map(tmp_path, bench, request):
    from tests.benchmarks.harness import BenchRow

    tiny = request.config.getoption("--bench-scale") == "tiny"
    result = run_map_bench(tmp_path, n_events=20_000 if tiny else N_EVENTS, sdk_events=2_000 if tiny else SDK_EVENTS)
    for line in result.lines():
        print(line)
    bench.add(BenchRow(
        name=f"map: load+map+bodies, {result.rows_in:,} rows", toolkit=result.toolkit_eps, anchor=result.sdk_eps,
        unit="events/s", anchor_name="optimizely-sdk UserEventFactory+EventFactory+json.dumps, one by one",
        target=f">= {TARGET:g}x", met=result.ratio >= TARGET,
        notes=f"peak RSS {result.peak_rss_mb:,.0f} MB (target <= 2048 MB); map+bodies alone "
              f"{result.map_and_bodies_ratio:.1f}x",
        extra={"bodies": result.bodies, "events": result.events, "peak_rss_mb": result.peak_rss_mb,
               "phases_s": result.phases},
    ))
    assert result.events > 0 and result.bodies > 0
