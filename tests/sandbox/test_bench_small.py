"""The sandbox ingest benchmark's code paths, tiny (2 bodies), so the benchmark cannot rot."""

from tests.benchmarks.bench_sandbox import run_in_process, run_over_http, run_results


def test_bench_sandbox_in_process_small(tmp_path):
    row = run_in_process(2, tmp_path, repeat=1)  # asserts inside: all 2000 events stored
    assert row.toolkit > 0 and row.extra["cpu_rate"] > 0 and row.target == ">= 1x"


def test_bench_sandbox_over_http_small(tmp_path):
    row = run_over_http(2, tmp_path, repeat=1)
    assert row.toolkit > 0 and row.extra["server_cpu_rate"] > 0 and row.extra["settled_rate"] > 0


def test_bench_sandbox_results_small(tmp_path):
    rows = run_results(2, tmp_path, repeat=1)  # asserts inside: the counts attribution must find
    assert [r.unit for r in rows] == ["s", "s", "s"] and all(r.toolkit > 0 and r.extra["cpu_s"] >= 0 for r in rows)
