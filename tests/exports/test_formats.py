"""Each format (and gzip) normalizes to the same NORMALIZED rows; detection and forcing."""

from __future__ import annotations

import gzip
import shutil

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from toolkit.contracts import NORMALIZED
from toolkit.errors import ExportError
from toolkit.exports import detect_format, iter_export, load_export

EVENTS = [
    {"messageId": "m1", "type": "track", "event": "Order Completed", "userId": "u1", "anonymousId": "a1",
     "properties": {"total": 89.99, "currency": " gbp ", "quantity": 2, "z": 1, "a": {"y": 2, "x": 1}},
     "timestamp": "2026-11-02T10:00:00.123Z"},
    {"messageId": "m2", "type": "track", "event": "purchase", "anonymousId": "a2",
     "properties": {"revenue": "19.99", "total": 5, "value": 1.5, "currency": "JPY"},
     "timestamp": "2026-11-02T12:00:00.000+02:00"},
    {"messageId": "m3", "type": "page", "event": "Home", "anonymousId": "a3", "timestamp": "2026-11-03T00:00:00Z"},
]
EXPECTED = {
    "event_id": ["m1", "m2", "m3"],
    "timestamp": [1793613600123, 1793613600000, 1793664000000],
    "properties": ['{"a":{"x":1,"y":2},"currency":" gbp ","quantity":2,"total":89.99,"z":1}',
                   '{"currency":"JPY","revenue":"19.99","total":5,"value":1.5}', "{}"],
    "revenue_raw": ["89.99", "19.99", None],
    "revenue_source": ["total", "revenue", None],
    "currency": ["GBP", "JPY", None],
    "value_raw": [None, "1.5", None],
    "quantity": [2, None, None],
    "user_id": ["u1", None, None],
    "source_row": [1, 2, 3],
}


def write_jsonl(path, events=EVENTS):
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return path


def warehouse_table(events=EVENTS) -> pa.Table:
    return pa.table({
        "event_id": [e["messageId"] for e in events],
        "type": [e["type"] for e in events],
        "event": [e["event"] for e in events],
        "anonymous_id": [e.get("anonymousId") for e in events],
        "user_id": pa.array([e.get("userId") for e in events], pa.string()),
        "timestamp": [e["timestamp"] for e in events],
        "properties": [orjson.dumps(e["properties"]).decode() if "properties" in e else None for e in events],
    })


def write_csv(path, events=EVENTS):
    import pyarrow.csv as pcsv

    pcsv.write_csv(warehouse_table(events), path)
    return path


def gzipped(path):
    out = path.with_name(path.name + ".gz")
    with open(path, "rb") as src, gzip.open(out, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return out


def check(chunk):
    ev = chunk.events
    assert list(ev.columns) == list(NORMALIZED)
    assert {c: str(t) for c, t in ev.dtypes.items()} == NORMALIZED
    for col, want in EXPECTED.items():
        got = [None if pd.isna(v) else v for v in ev[col].tolist()]
        assert got == want, col
    assert chunk.rows_in == len(ev) + len(chunk.quarantine)


def test_jsonl(tmp_path):
    check(load_export(write_jsonl(tmp_path / "e.jsonl")))


def test_csv(tmp_path):
    check(load_export(write_csv(tmp_path / "e.csv")))


def test_parquet_json_text(tmp_path):
    pq.write_table(warehouse_table(), tmp_path / "e.parquet")
    check(load_export(tmp_path / "e.parquet"))


@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_gzip_by_name_and_by_magic(tmp_path, kind):
    plain = write_jsonl(tmp_path / "e.jsonl") if kind == "jsonl" else write_csv(tmp_path / "e.csv")
    gz = gzipped(plain)
    check(load_export(gz))
    hidden = gz.rename(tmp_path / f"e.{kind}")  # gzip content under a plain name: magic bytes decide
    plain_copy = tmp_path / "nameless"
    shutil.copy(hidden, plain_copy)
    check(load_export(hidden))
    check(load_export(plain_copy))


def test_parquet_struct_and_map_properties_and_typed_timestamps(tmp_path):
    table = pa.table({
        "event_id": ["p1", "p2"], "type": ["track", "track"], "event": ["a", "b"],
        "anonymous_id": ["x", "y"], "user_id": pa.array([101, None], pa.int64()),
        "timestamp": pa.array([1793613600123000, 1793613600000000], pa.timestamp("us", tz="UTC")),
        "properties": pa.array([{"total": 19.99, "currency": "eur", "quantity": None},
                                {"total": None, "currency": "JPY", "quantity": 3}]),
    })
    pq.write_table(table, tmp_path / "s.parquet")
    ev = load_export(tmp_path / "s.parquet").events
    assert ev["properties"].tolist() == ['{"currency":"eur","total":19.99}', '{"currency":"JPY","quantity":3}']
    assert ev["timestamp"].tolist() == [1793613600123, 1793613600000]
    assert ev["user_id"].tolist()[0] == "101" and pd.isna(ev["user_id"].iloc[1])
    assert ev["revenue_raw"].tolist()[0] == "19.99" and ev["currency"].tolist() == ["EUR", "JPY"]
    mapped = table.set_column(6, "properties", pa.array([[("total", "5.00")], None],
                                                        pa.map_(pa.string(), pa.string())))
    pq.write_table(mapped, tmp_path / "m.parquet")
    ev = load_export(tmp_path / "m.parquet").events
    assert ev["properties"].tolist() == ['{"total":"5.00"}', "{}"]
    assert ev["revenue_raw"].iloc[0] == "5.00"


def test_detection_from_name_then_content(tmp_path):
    assert detect_format(write_jsonl(tmp_path / "a.ndjson")) == "jsonl"
    assert detect_format(write_csv(tmp_path / "a.csv")) == "csv"
    pq.write_table(warehouse_table(), tmp_path / "a.parquet")
    assert detect_format(tmp_path / "a.parquet") == "parquet"
    shutil.copy(tmp_path / "a.parquet", tmp_path / "noext")
    assert detect_format(tmp_path / "noext") == "parquet"
    shutil.copy(tmp_path / "a.csv", tmp_path / "export.txt")
    assert detect_format(tmp_path / "export.txt") == "csv"
    shutil.copy(tmp_path / "a.parquet", tmp_path / "misnamed.jsonl")  # content wins over the name
    assert detect_format(tmp_path / "misnamed.jsonl") == "parquet"
    (tmp_path / "blob.bin").write_bytes(b"hello world\n")
    with pytest.raises(ExportError, match="cannot tell the format"):
        detect_format(tmp_path / "blob.bin")


def test_forcing(tmp_path):
    odd = write_jsonl(tmp_path / "events.log")
    check(load_export(odd, fmt="jsonl"))
    with pytest.raises(ExportError, match="forced.*content is jsonl"):
        list(iter_export(odd, fmt="csv"))
    with pytest.raises(ExportError, match="unknown format"):
        list(iter_export(odd, fmt="xml"))
    (tmp_path / "garbage.txt").write_bytes(b"not,an,export\n1,2,3\n")
    with pytest.raises(ExportError, match="not a readable Parquet"):
        list(iter_export(tmp_path / "garbage.txt", fmt="parquet"))


def test_unreadable_files_are_one_line_errors(tmp_path):
    with pytest.raises(ExportError, match="file not found") as e:
        list(iter_export(tmp_path / "missing.jsonl"))
    assert "\n" not in str(e.value)
    (tmp_path / "h.jsonl.gz").write_bytes(gzip.compress(b'{"a":1}\n')[:6])
    with pytest.raises(ExportError, match="truncated"):
        list(iter_export(tmp_path / "h.jsonl.gz"))
    pq.write_table(pa.table({}), tmp_path / "empty.parquet")
    with pytest.raises(ExportError, match="empty schema"):
        list(iter_export(tmp_path / "empty.parquet"))
    (tmp_path / "cols.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ExportError, match="no known column"):
        list(iter_export(tmp_path / "cols.csv", fmt="csv"))


def test_empty_jsonl_gives_an_empty_frame(tmp_path):
    (tmp_path / "e.jsonl").write_bytes(b"")
    chunk = load_export(tmp_path / "e.jsonl")
    assert chunk.rows_in == 0 and list(chunk.events.columns) == list(NORMALIZED)
