"""The reconcile benchmark's inputs and run, tiny, so the benchmark cannot rot."""

from tests.benchmarks.bench_reconcile import build_inputs, run_once


def test_bench_reconcile_small():
    inputs = build_inputs(4_000)
    for with_e3 in (False, True):
        rec = run_once(inputs, with_e3=with_e3)
        assert rec.unexplained == 3
        assert rec.diagnosis("not_bucketed").count > 0 and rec.diagnosis("decision_after_conversion").count > 0
