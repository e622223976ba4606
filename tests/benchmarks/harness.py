"""Benchmark harness: repeat, take the median and the spread, and collect rows for the run's table.

A row compares the toolkit's figure with an anchor measured in the same run on the same machine
(the optimizely-sdk path, the physical limit, or a fixed target). ``make bench`` writes the rows
to ``reports/bench/<timestamp>.json`` and prints them as a table.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass
class Measurement:
    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def spread(self) -> float:
        """(max - min) / median: how noisy the repeats were."""
        return (max(self.seconds) - min(self.seconds)) / self.median if self.median else 0.0


def settle() -> None:
    """Before timing anything on freshly written inputs: flush them to disk, so the kernel's
    background writeback of hundreds of MB does not run (and take CPU) during the measured runs
    (the first replay runs after generating the 1M-row sample read ~0.2 s slower; measured)."""
    os.sync()


def spread_of(xs: list[float]) -> float:
    """(max - min) / median of repeated figures: how noisy they were."""
    med = statistics.median(xs)
    return (max(xs) - min(xs)) / med if med else 0.0


def measure(fn: Callable[[], Any], *, repeat: int = 3, warmup: int = 0) -> Measurement:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return Measurement(times)


@dataclass
class BenchRow:
    name: str
    toolkit: float
    anchor: float | None
    unit: str  # e.g. "events/s", "s", "MB"
    anchor_name: str
    target: str  # e.g. ">= 10x", "< 15 s"
    met: bool
    ratio: float | None = None
    spread: float | None = None
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class BenchCollector:
    def __init__(self, partial: Path | None = None) -> None:
        self.rows: list[BenchRow] = []
        self.partial = partial  # rows are also appended here as they come, so a stopped run keeps them

    def add(self, row: BenchRow) -> BenchRow:
        if row.ratio is None and row.anchor:
            row.ratio = row.toolkit / row.anchor if row.unit.endswith("/s") else row.anchor / row.toolkit
        self.rows.append(row)
        if self.partial is not None:
            self.partial.parent.mkdir(parents=True, exist_ok=True)
            with self.partial.open("a") as fh:
                fh.write(json.dumps(asdict(row)) + "\n")
        return row

    def table(self) -> str:
        head = f"{'row':<44} {'toolkit':>14} {'anchor':>14} {'ratio':>8} {'spread':>7}  target      met"
        lines = [head, "-" * len(head)]
        for r in self.rows:
            anchor = f"{r.anchor:,.1f}" if r.anchor is not None else "-"
            ratio = f"{r.ratio:.1f}x" if r.ratio is not None else "-"
            spread = f"{r.spread:.0%}" if r.spread is not None else "-"
            lines.append(f"{r.name:<44} {r.toolkit:>12,.1f} {r.unit[:2]:<1} {anchor:>14} {ratio:>8} {spread:>7}  "
                         f"{r.target:<11} {'yes' if r.met else 'NO'}")
            if r.anchor_name:
                lines.append(f"{'':<4}anchor: {r.anchor_name}; unit {r.unit}{'; ' + r.notes if r.notes else ''}")
        return "\n".join(lines)

    def write(self, out_dir: Path) -> Path:
        out_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        path = out_dir / f"{stamp}.json"
        payload = {
            "timestamp": stamp,
            "machine": {"platform": platform.platform(), "python": platform.python_version(),
                        "cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
            "rows": [asdict(r) for r in self.rows],
        }
        path.write_text(json.dumps(payload, indent=2))
        return path


def pool_workers() -> list:
    """This process's pool workers (psutil processes): its children when the pool forks, the fork
    server's children when it uses one (the fork server and its resource tracker left out)."""
    import multiprocessing.forkserver

    import psutil

    fs = multiprocessing.forkserver._forkserver._forkserver_pid
    try:
        forked = [p for p in psutil.Process().children()
                  if p.pid != fs and "multiprocessing" not in " ".join(p.cmdline())]
        return forked + (psutil.Process(fs).children() if fs else [])
    except psutil.Error:
        return []


def tree_rss(proc) -> int:
    """RSS of a process and all its descendants (a fork server and its workers), bytes. Pages the
    workers share with the fork server count once per process: an upper bound."""
    import contextlib

    import psutil

    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def peak_rss_tree(cmd: list[str], env: dict[str, str] | None = None, *,
                  interval: float = 0.05) -> tuple[float, float]:
    """(peak RSS in MB summed over the command's process tree, seconds), sampled with psutil."""
    import contextlib
    import subprocess

    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root, peak = psutil.Process(proc.pid), 0
    with contextlib.suppress(psutil.NoSuchProcess):  # the command ended between two samples
        while proc.poll() is None:
            peak = max(peak, tree_rss(root))
            time.sleep(interval)
    err = proc.communicate()[1].decode()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[2:4])} exited {proc.returncode}: {err[-500:]}")
    return peak / 2**20, time.perf_counter() - t0


RSS_LIMIT_MB = 2048.0  # issue 10 row 6: peak RSS of a command at most 2 GB ...
RSS_GROWTH = 0.25  # ... and growing by less than 25% from the smallest to the largest export


def add_rss_rows(bench: BenchCollector, command: str, rss: dict[int, tuple[float, float]], *,
                 notes: str = "") -> None:
    """Rows for ``command``'s peak RSS at each size (rows -> (MB, seconds)), and its growth from the
    smallest to the largest size, against the 2 GB and 25% targets; printed as they are added."""
    for rows, (peak, seconds) in rss.items():
        print(f"{command} {rows:,} rows: peak RSS {peak:,.0f} MB in {seconds:.0f} s")
        bench.add(BenchRow(name=f"{command} peak RSS, {rows:,} rows", toolkit=peak, anchor=None, unit="MB",
                           anchor_name="", target=f"<= {RSS_LIMIT_MB:,.0f} MB", met=peak <= RSS_LIMIT_MB,
                           notes=notes, extra={"seconds": seconds}))
    if len(rss) >= 2:
        (small, (p_small, _)), (large, (p_large, _)) = min(rss.items()), max(rss.items())
        growth = p_large / p_small - 1
        print(f"{command} peak RSS growth {small:,} -> {large:,} rows: {growth:+.0%} (target < {RSS_GROWTH:.0%})")
        bench.add(BenchRow(name=f"{command.split(' --')[0]} RSS growth {small:,} -> {large:,}", toolkit=growth * 100,
                           anchor=None, unit="%", anchor_name="", target=f"< {RSS_GROWTH:.0%}",
                           met=growth < RSS_GROWTH, notes=f"{p_small:,.0f} MB -> {p_large:,.0f} MB"))
