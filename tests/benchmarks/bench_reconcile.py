"""Reconcile speed: 1M delivered events against results, and against E3 of the same size.

The ledger frames are built in memory (vectorized) in the shapes ``read_ledger`` returns: visitors
with one decision in checkout_flow and conversions of its three metric keys, 2% without decisions,
1% with the decision after the conversion. Results are what the attribution rules count, with one
row short by 3 (so the table has a real unexplained gap to report). Timed: ``reconcile()`` itself,
the predictor over the delivered events included. Target (issue 8): < 20 s each on a 2-core machine.
``tests/reconcile/test_bench_small.py`` runs it tiny so it cannot rot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

N_EVENTS = 1_000_000
TARGET_SECONDS = 20.0
T0 = 1_700_000_000_000


@dataclass(frozen=True)
class Inputs:
    ledger: object
    results: pd.DataFrame
    e3: object
    datafile: object


def build_inputs(n_events: int = N_EVENTS, seed: int = 11) -> Inputs:
    from toolkit.attribution import predict
    from toolkit.contracts import EVENTS, conform
    from toolkit.datafile import load_datafile
    from toolkit.ledger import LEDGER_BATCHES, LEDGER_EVENTS, LEDGER_REQUESTS, LedgerFrames
    from toolkit.results import RESULTS, E3Frames

    df = load_datafile(Path(__file__).resolve().parents[1] / "fixtures" / "datafile.json")
    rng = np.random.default_rng(seed)
    n_vis = n_events // 4  # one impression + three conversions each
    vis = np.char.add("v", np.arange(n_vis).astype(str))
    var = np.where(rng.random(n_vis) < 0.5, "70001", "70002")
    t_dec = T0 + rng.integers(0, 86_400_000, n_vis)
    has_dec = rng.random(n_vis) >= 0.02
    late = rng.random(n_vis) < 0.01
    imp = pd.DataFrame({
        "uuid": np.char.add("i-", vis), "kind": "impression", "key": "campaign_activated", "entity_id": "60001",
        "visitor_id": vis, "timestamp": t_dec, "campaign_id": "60001", "experiment_id": "50001", "variation_id": var,
    })[has_dec]
    keys = np.array(["purchase", "add_to_cart", "begin_checkout"])
    conv_vis = np.repeat(np.arange(n_vis), 3)
    conv_t = t_dec[conv_vis] + np.where(late[conv_vis], -60_000, 1 + rng.integers(0, 3_600_000, len(conv_vis)))
    conv = pd.DataFrame({
        "uuid": np.char.add("c-", np.arange(len(conv_vis)).astype(str)), "kind": "conversion",
        "key": keys[np.arange(len(conv_vis)) % 3], "visitor_id": vis[conv_vis], "timestamp": conv_t,
        "revenue": np.where(np.arange(len(conv_vis)) % 3 == 0, rng.integers(100, 20_000, len(conv_vis)), 0),
    })
    conv["entity_id"] = conv["key"].map({k: e.id for k, e in df.events.items()})
    conv["revenue"] = conv["revenue"].where(conv["key"] == "purchase")
    ev = pd.concat([imp, conv], ignore_index=True)
    n = len(ev)
    ev["batch_id"] = np.char.add("b", (np.arange(n) // 5000).astype(str))
    ev["status"], ev["attempts"], ev["last_status"], ev["synthesized"] = "delivered", 1, 204, False
    events = pd.DataFrame({c: (ev[c] if c in ev else pd.Series([None] * n)) for c in LEDGER_EVENTS}).astype(LEDGER_EVENTS)
    batch_ids = events["batch_id"].unique()
    batches = pd.DataFrame({"batch_id": batch_ids, "n_events": 5000, "bytes": 1, "status": "delivered", "attempts": 1,
                            "last_status": 204, "last_error": None}).astype(LEDGER_BATCHES)
    requests = pd.DataFrame({"id": np.arange(len(batch_ids)), "batch_id": batch_ids, "attempt": 1,
                             "started_at": pd.Timestamp("2023-11-20", tz="UTC"), "latency_ms": 5.0, "bytes": 1,
                             "status": 204, "error": None}).astype(LEDGER_REQUESTS)
    run = {"run_id": "bench", "account_id": df.account_id, "project_id": df.project_id, "revision": df.revision}
    ledger = LedgerFrames(run=run, events=events, batches=batches, requests=requests)

    counts = predict(conform(events, EVENTS), df).counts
    results = conform(counts.rename(columns={"variation_key": "variation_name"}).assign(
        start_time=pd.Timestamp("2023-11-01", tz="UTC"), end_time=pd.Timestamp("2023-12-31", tz="UTC")), RESULTS)
    hit = (results["variation_id"] == "70001") & (results["event_key"] == "purchase")
    results.loc[hit, "total_conversions"] -= 3
    e3 = E3Frames(decisions=imp[["uuid"]].assign(revision=df.revision).astype("string"),
                  events=conv[["uuid"]].assign(revision=df.revision).astype("string"))
    return Inputs(ledger, results, e3, df)


def run_once(inputs: Inputs, *, with_e3: bool):
    from toolkit.reconcile import reconcile

    return reconcile(inputs.ledger, inputs.results, inputs.datafile, e3=inputs.e3 if with_e3 else None,
                     as_of=datetime(2024, 1, 1, tzinfo=UTC))


@pytest.mark.bench
def test_bench_reconcile(bench):
    from tests.benchmarks.harness import BenchRow, measure

    inputs = build_inputs()
    delivered = len(inputs.ledger.events)
    for with_e3 in (False, True):
        rec = run_once(inputs, with_e3=with_e3)
        assert rec.unexplained == 3
        m = measure(lambda w=with_e3: run_once(inputs, with_e3=w), repeat=3)
        bench.add(BenchRow(f"reconcile {delivered:,} delivered events{' + E3' if with_e3 else ''}", m.median,
                               TARGET_SECONDS, "s", "fixed target", f"< {TARGET_SECONDS:g} s",
                               m.median < TARGET_SECONDS, spread=m.spread))
