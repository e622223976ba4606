"""The replay benchmark at a tiny size, so its code cannot rot (no speed assertion here:
figures belong to `make bench`)."""

from __future__ import annotations

from tests.benchmarks.bench_replay import run_replay_bench, run_replay_memory_bench
from toolkit.ledger import read_ledger


def test_replay_benchmark_runs_end_to_end_at_tiny_size(tmp_path):
    result = run_replay_bench(tmp_path, events=400, sdk_events=50, concurrency=2, repeat=2)
    assert result.events > 0 and result.delivered == 2 * result.events
    assert len(result.toolkit_runs) == len(result.sdk_runs) == len(result.ceiling_runs) == 2
    assert result.sdk_events == 50
    # the sink saw exactly what the three paths sent: nothing lost, nothing invented
    assert result.sink_ok and result.sink["/v1/events"] == result.expected_sink["/v1/events"]
    assert result.sink["/v1/events"]["bytes"] > 0 and result.sink["/sdk/v1/events"]["requests"] == 2 * 5
    assert min(result.toolkit_eps, result.sdk_eps, result.ceiling_eps) > 0 and result.toolkit_cpu > 0
    assert result.sdk_cpu > 0 and result.cpu_ratio > 0
    assert len(result.lines()) == 4 and "x (target >= 20x; per CPU second" in result.lines()[3]
    for name in ("bench.sqlite", "bench-1.sqlite"):  # a new run, with its own ledger, per repeat
        led = read_ledger(tmp_path / name)
        assert set(led.events["status"]) == {"delivered"} and len(led.events) == result.events
    assert led.run["chunk_rows"] == "200000"  # the product path: `toolkit replay --export`, streamed


def test_memory_benchmark_samples_the_replay_dry_run(tmp_path):
    (peak, seconds), = run_replay_memory_bench(tmp_path, (300,)).values()
    assert 20 < peak < 2048 and seconds > 0  # a Python process with pandas loaded, far under the limit
    assert not list(tmp_path.glob("replay-mem-300*"))  # the generated export and its ledger are removed
