"""The mapping benchmark at a tiny size, so its code cannot rot (no speed assertion here: speed
is judged by `make bench`, not by a timed unit test)."""

from __future__ import annotations

import statistics
import subprocess

import psutil

import toolkit.map_export
from tests.benchmarks.bench_map import run_map_bench, run_memory_bench
from tests.benchmarks.harness import tree_rss
from toolkit.map_pool import auto_workers


def test_map_benchmark_runs_end_to_end_at_tiny_size(tmp_path, monkeypatch):
    monkeypatch.setattr(toolkit.map_export, "MIN_POOL_ROWS", 100)  # chunks of 500 rows go to the workers
    result = run_map_bench(tmp_path, n_events=1_500, sdk_events=200, chunk_rows=500, repeat=2)
    assert result.rows_in == 1_500
    # pages are skipped; every other row becomes exactly one event in some body
    assert 0 < result.events < result.rows_in and result.bodies >= 1
    assert len(result.toolkit_seconds) == len(result.sdk_seconds) == 2
    assert result.toolkit_eps > 0 and result.sdk_eps > 0 and result.sdk_events > 0 and result.cpu_ratio > 0
    assert "ratio toolkit / sdk" in result.lines()[2] and set(result.phases) == {"load + map", "bodies", "workers"}
    assert (result.phases_cpu["workers"] > 0) == (auto_workers() > 0)  # the workers' CPU is counted
    assert 0 < result.main_cpu < statistics.median(result.toolkit_cpu) and "this process's CPU" in result.lines()[3]


def test_memory_benchmark_samples_the_map_command(tmp_path):
    (peak, seconds), = run_memory_bench(tmp_path, (300,)).values()
    assert 20 < peak < 2048 and seconds > 0  # a Python process with pandas loaded, far under the limit
    assert not (tmp_path / "mem-300.jsonl").exists()  # the generated export is removed


def test_tree_rss_counts_the_child_processes():
    me = psutil.Process()
    child = subprocess.Popen(["sleep", "30"])
    try:
        kid = psutil.Process(child.pid).memory_info().rss
        before, tree, after = me.memory_info().rss, tree_rss(me), me.memory_info().rss
        assert tree >= min(before, after) + kid > kid > 0
    finally:
        child.kill()
        child.wait()
