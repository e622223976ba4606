"""iter_export_parts cuts the chunks of iter_export; loaded anywhere (after pickling, as a process
pool does), each part is the same chunk: same frames, rows_in, boundaries, line numbers."""

from __future__ import annotations

import gzip
import json
import pickle
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.exports.test_columnwise import odd_lines
from tests.exports.test_formats import warehouse_table
from tests.exports.test_rows import line, mixed_file
from toolkit.contracts import Reason
from toolkit.errors import ExportError
from toolkit.exports import iter_export, iter_export_parts

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "export.jsonl"


def same_chunks(path, **kw) -> list:
    chunks = list(iter_export(path, **kw))
    parts = list(iter_export_parts(path, **kw))
    assert [p.rows_in for p in parts] == [c.rows_in for c in chunks]
    for part, chunk in zip(parts, chunks, strict=True):
        got = pickle.loads(pickle.dumps(part, protocol=5)).load()
        pd.testing.assert_frame_equal(got.events, chunk.events, check_exact=True)
        pd.testing.assert_frame_equal(got.quarantine, chunk.quarantine, check_exact=True)
        assert got.rows_in == chunk.rows_in
    return chunks


@pytest.mark.parametrize("chunk_rows", [1, 3, 7, 19, 1000])
def test_defects_blank_lines_and_chunk_boundaries(tmp_path, chunk_rows):
    path = mixed_file(tmp_path / "x.jsonl", n=60)
    raw = path.read_bytes()  # blank lines of every kind, a last line without newline, a last blank
    path.write_bytes(b"\n\n" + raw.replace(b"\n", b"\n \t\n", 3) + b"\r\n\x0c\n" + line(99) + b"\n  ")
    chunks = same_chunks(path, chunk_rows=chunk_rows)
    assert len(chunks) >= 60 // chunk_rows
    assert sum(c.rows_in for c in chunks) == 61


def test_odd_values_and_the_sample(tmp_path):
    path = tmp_path / "odd.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in odd_lines(3000, 4)))
    assert len(same_chunks(path, chunk_rows=700)) == 5
    assert sum(c.rows_in for c in same_chunks(SAMPLE, chunk_rows=500)) == 2001


@pytest.mark.parametrize("n, chunk_rows", [(20000, 5000), (20000, 1000), (3, 1)])
def test_truncated_gzip(tmp_path, n, chunk_rows):
    data = gzip.compress(b"".join(line(i) + b"\n" for i in range(n)))
    path = tmp_path / "t.jsonl.gz"
    path.write_bytes(data[: len(data) // 2] if n > 3 else data[:-12])
    chunks = same_chunks(path, chunk_rows=chunk_rows)
    q = pd.concat([c.quarantine for c in chunks])
    assert q["reason"].tolist() == [Reason.TRUNCATED_FILE]


def test_warehouse_formats_are_parts_too(tmp_path):
    pq.write_table(warehouse_table(), tmp_path / "e.parquet")
    assert sum(c.rows_in for c in same_chunks(tmp_path / "e.parquet", chunk_rows=2)) == 3
    plain = gzip.compress(SAMPLE.read_bytes())
    (tmp_path / "s.jsonl.gz").write_bytes(plain)
    assert len(same_chunks(tmp_path / "s.jsonl.gz", chunk_rows=1500)) == 2


def test_unreadable_input_fails_before_the_first_part(tmp_path):
    (tmp_path / "h.jsonl.gz").write_bytes(gzip.compress(b'{"a":1}\n')[:6])
    with pytest.raises(ExportError, match="truncated"):
        next(iter_export_parts(tmp_path / "h.jsonl.gz"))
    with pytest.raises(ExportError, match="chunk_rows"):
        next(iter_export_parts(SAMPLE, chunk_rows=0))
