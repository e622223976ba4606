"""Benchmarks (marker ``bench``; not in ``make test``): offline bucketing at 100k visitors against the
SDK's own ``Optimizely.get_variation`` loop, and the predictor on 1M events.

Run: ``make bench`` (or ``.venv/bin/python -m pytest -q -m bench tests/benchmarks/bench_decisions.py``)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from optimizely import optimizely
from optimizely.logger import NoOpLogger

from tests.benchmarks.harness import BenchRow, measure
from tests.decisions.builders import fixture_datafile
from toolkit.attribution import predict
from toolkit.bucketing import bucket_impressions
from toolkit.contracts import EVENTS, conform

pytestmark = pytest.mark.bench

VISITORS = 100_000
EVENTS_N = 1_000_000
SDK_SLICE = 10_000  # visitors decided through the SDK's public API, for the anchor


def _events(df, n_events: int, n_visitors: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    keys = np.array(["purchase", "add_to_cart", "signup", "form_submit", "begin_checkout", "nope"])
    key = keys[rng.integers(0, len(keys), n_events)]
    ids = {k: e.id for k, e in df.events.items()}
    frame = pd.DataFrame({
        "kind": "conversion",
        "uuid": [f"u{i}" for i in range(n_events)],
        "visitor_id": [f"vis{v}" for v in rng.integers(0, n_visitors, n_events)],
        "timestamp": 1_700_000_000_000 + rng.integers(0, 10**8, n_events),
        "key": key,
        "entity_id": [ids.get(k) for k in key],
        "revenue": rng.integers(0, 10_000, n_events),
    })
    return conform(frame, EVENTS)


def test_bench_bucketing_and_predict(bench):
    df = fixture_datafile()
    events = _events(df, EVENTS_N, VISITORS)

    imps = bucket_impressions(events, df)
    m_bucket = measure(lambda: bucket_impressions(events, df), repeat=3)
    n_visitors = events["visitor_id"].nunique()

    sdk_users = events["visitor_id"].drop_duplicates().head(SDK_SLICE).tolist()
    client = optimizely.Optimizely(datafile=df.text, logger=NoOpLogger())
    try:
        m_sdk = measure(lambda: [client.get_variation(k, u) for u in sdk_users
                                 for k in ("checkout_flow", "pricing_page", "group_exp_1")], repeat=3)
    finally:
        client.close()
    bench.add(BenchRow(
        name=f"bucket_impressions, {n_visitors:,} visitors", toolkit=n_visitors / m_bucket.median,
        anchor=len(sdk_users) / m_sdk.median, unit="visitors/s",
        anchor_name="Optimizely.get_variation per visitor x experiment (3 experiments)",
        target="< 15 s", met=m_bucket.median < 15, spread=m_bucket.spread,
        notes=f"{m_bucket.median:.1f} s, {len(imps):,} impressions"))

    all_events = pd.concat([imps, events], ignore_index=True)
    m_pred = measure(lambda: predict(all_events, df), repeat=3)
    bench.add(BenchRow(
        name=f"predict, {len(all_events):,} events", toolkit=len(all_events) / m_pred.median, anchor=None,
        unit="events/s", anchor_name="", target="< 10 s", met=m_pred.median < 10, spread=m_pred.spread,
        notes=f"{m_pred.median:.1f} s"))
