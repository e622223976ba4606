"""Validation speed: all shipped suites over 1M mapped events (+1% quarantined rows).

Events are built vectorized in the EVENTS shape: visitors with one decision in checkout_flow and
three conversions of its metric keys (purchase with revenue and a currency tag), 2% of visitors
without a decision, a few duplicated uuids and out-of-range revenues so the failing paths run too.
Timed: ``run_suites`` (validation frame + Great Expectations), suites loaded once before (GX import).
Target (issue 7): < 15 s on a 2-core machine. ``tests/expectations/test_bench_small.py`` runs it tiny.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

N_EVENTS = 1_000_000
TARGET_SECONDS = 15.0
T0 = 1_700_000_000_000


def build_inputs(n_events: int = N_EVENTS, seed: int = 7):
    from toolkit.contracts import EVENTS, QUARANTINE, conform
    from toolkit.datafile import load_datafile

    df = load_datafile(Path(__file__).resolve().parents[1] / "fixtures" / "datafile.json")
    rng = np.random.default_rng(seed)
    n_vis = max(n_events // 4, 1)
    vis = np.char.add("v", np.arange(n_vis).astype(str))
    t_dec = T0 + rng.integers(0, 86_400_000, n_vis)
    has_dec = rng.random(n_vis) >= 0.02
    imp = pd.DataFrame({
        "kind": "impression", "uuid": np.char.add("i-", vis), "visitor_id": vis, "timestamp": t_dec,
        "key": "campaign_activated", "entity_id": "60001", "campaign_id": "60001", "experiment_id": "50001",
        "variation_id": np.where(rng.random(n_vis) < 0.5, "70001", "70002"), "tags": "{}",
    })[has_dec]
    keys = np.array(["purchase", "add_to_cart", "begin_checkout"])
    idx = np.repeat(np.arange(n_vis), 3)
    n_conv = len(idx)
    key = keys[np.arange(n_conv) % 3]
    currency = np.where(rng.random(n_conv) < 0.8, "USD", "EUR")
    revenue = rng.integers(500, 20_000, n_conv).astype("float64")
    revenue[rng.random(n_conv) < 0.001] *= 100  # looks multiplied twice
    tags = np.char.add(np.char.add('{"currency":"', currency), '"}')
    conv = pd.DataFrame({
        "kind": "conversion", "uuid": np.char.add("c-", np.arange(n_conv).astype(str)), "visitor_id": vis[idx],
        "timestamp": t_dec[idx] + 1 + rng.integers(0, 3_600_000, n_conv), "key": key,
        "entity_id": pd.Series(key).map({k: e.id for k, e in df.events.items()}).to_numpy(),
        "revenue": np.where(key == "purchase", revenue, np.nan), "tags": np.where(key == "purchase", tags, "{}"),
    })
    ev = pd.concat([imp, conv], ignore_index=True)
    ev["uuid"] = ev["uuid"].where(np.arange(len(ev)) % 100_000 != 1, ev["uuid"].iloc[0])  # a few duplicates
    ev["source_row"] = np.arange(1, len(ev) + 1)
    ev["source_event_id"] = np.char.add("s", ev["source_row"].astype(str).to_numpy())
    events = conform(ev.assign(revenue=ev["revenue"].astype("Int64")), EVENTS)
    n_q = max(len(events) // 100, 1)
    reasons = np.array(["key_not_in_datafile", "missing_visitor_id", "invalid_revenue", "malformed_row"])
    quarantine = conform(pd.DataFrame({
        "source_event_id": np.char.add("q", np.arange(n_q).astype(str)),
        "source_row": np.arange(len(events) + 1, len(events) + 1 + n_q),
        "reason": reasons[np.arange(n_q) % 4], "detail": "bench",
    }), QUARANTINE)
    return events, quarantine, df


def run_once(events, quarantine, datafile, suites):
    from toolkit.expectations import ValidationSettings, run_suites

    return run_suites(events, quarantine, datafile, suites=suites,
                      settings=ValidationSettings(now_ms=T0 + 10 * 86_400_000))


@pytest.mark.bench
def test_bench_validate(bench):
    from tests.benchmarks.harness import BenchRow, measure
    from toolkit.expectations import load_suites

    events, quarantine, datafile = build_inputs()
    suites = load_suites()
    report = run_once(events, quarantine, datafile, suites)
    assert not report.success  # the duplicated uuids are caught
    assert {o.label.split(" ")[0] for o in report.outcomes if o.failed} >= {"identity_time#2", "revenue#6"}
    m = measure(lambda: run_once(events, quarantine, datafile, suites), repeat=3)
    bench.add(BenchRow(f"validate {len(events):,} events (all suites)", m.median, TARGET_SECONDS, "s",
                           "fixed target", f"< {TARGET_SECONDS:g} s", m.median < TARGET_SECONDS, spread=m.spread))
