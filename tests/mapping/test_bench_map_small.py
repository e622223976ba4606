"""The mapping benchmark at a tiny size, so its code cannot rot (no speed assertion here: speed
is judged by `make bench`, not by a timed unit test)."""

from __future__ import annotations

from tests.benchmarks.bench_map import run_map_bench, run_memory_bench


def test_map_benchmark_runs_end_to_end_at_tiny_size(tmp_path):
    result = run_map_bench(tmp_path, n_events=1_500, sdk_events=200, chunk_rows=500, repeat=2)
    assert result.rows_in == 1_500
    # pages are skipped; every other row becomes exactly one event in some body
    assert 0 < result.events < result.rows_in and result.bodies >= 1
    assert len(result.toolkit_seconds) == len(result.sdk_seconds) == 2
    assert result.toolkit_eps > 0 and result.sdk_eps > 0 and result.sdk_events > 0 and result.cpu_ratio > 0
    assert "ratio toolkit / sdk" in result.lines()[2] and set(result.phases) == {"load", "map", "bodies"}


def test_memory_benchmark_samples_the_map_command(tmp_path):
    (peak, seconds), = run_memory_bench(tmp_path, (300,)).values()
    assert 20 < peak < 2048 and seconds > 0  # a Python process with pandas loaded, far under the limit
    assert not (tmp_path / "mem-300.jsonl").exists()  # the generated export is removed
