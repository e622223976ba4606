"""Loader throughput on 1M rows per format (marker ``bench``: not part of ``make test``).

Run: .venv/bin/python -m pytest -q -m bench tests/exports/test_bench_loader.py -s
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from toolkit.exports import iter_export

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"
ROWS = 1_000_000


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("big")
    times = ROWS // 2000
    lines = (SAMPLE / "export.jsonl").read_bytes()
    with open(out / "big.jsonl", "wb") as fh:
        for _ in range(times):
            fh.write(lines)
    table = pa.concat_tables([pq.read_table(SAMPLE / "export.parquet")] * times)
    pq.write_table(table, out / "big.parquet", compression="zstd")
    pcsv.write_csv(table, out / "big.csv")
    return {"jsonl": out / "big.jsonl", "csv": out / "big.csv", "parquet": out / "big.parquet"}


@pytest.mark.bench
@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_loader_rows_per_second(big, fmt):
    start = time.perf_counter()
    rows = quarantined = 0
    for chunk in iter_export(big[fmt]):
        rows += chunk.rows_in
        quarantined += len(chunk.quarantine)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nload {fmt}: {rows:,} rows in {seconds:.2f} s = {rows / seconds:,.0f} rows/s, "
          f"{quarantined} quarantined, peak RSS {peak:.0f} MB")
    per_copy = 2 if fmt == "jsonl" else 1  # the sample's unparseable timestamp (+ its malformed JSONL line)
    assert rows >= ROWS and quarantined == ROWS // 2000 * per_copy
