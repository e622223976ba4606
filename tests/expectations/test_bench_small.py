"""The validation benchmark's builder and run, tiny, so the benchmark cannot rot unnoticed."""

from __future__ import annotations

from tests.benchmarks.bench_validate import build_inputs, run_once
from toolkit.expectations import load_suites


def test_bench_inputs_validate_small():
    events, quarantine, datafile = build_inputs(n_events=4000)
    report = run_once(events, quarantine, datafile, load_suites())
    failed = {o.label.split(" ")[0] for o in report.outcomes if o.failed}
    assert "identity_time#6" in failed  # 2% of visitors have no decision
    assert report.rows["events"] == len(events) and report.rows["quarantined"] == len(quarantine)
