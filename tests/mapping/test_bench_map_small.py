"""The mapping benchmark at a tiny size, so its code cannot rot (no speed assertion here: speed
is judged by `make bench`, not by a timed unit test)."""

from __future__ import annotations

from tests.benchmarks.bench_map import run_map_bench


def test_map_benchmark_runs_end_to_end_at_tiny_size(tmp_path):
    result = run_map_bench(tmp_path, n_events=1_500, sdk_events=200, chunk_rows=500)
    assert result.rows_in == 1_500
    # pages are skipped; every other row becomes exactly one event in some body
    assert 0 < result.events < result.rows_in and result.bodies >= 1
    assert result.toolkit_eps > 0 and result.sdk_eps > 0 and result.sdk_events > 0
    assert "ratio toolkit / sdk" in result.lines()[-2] and set(result.phases) == {"load", "map", "bodies"}
