"""Quarantine reasons, counts adding up, chunking, timestamps and money kept as text."""

from __future__ import annotations

import gzip

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit.contracts import QUARANTINE, Reason
from toolkit.exports import iter_export, load_export, money_text


def line(i, **over):
    ev = {"messageId": f"m{i}", "type": "track", "event": "signup", "anonymousId": f"a{i}",
          "properties": {"revenue": i + 0.99}, "timestamp": 1793613600000 + i}
    ev.update(over)
    return orjson.dumps(ev)


def mixed_file(path, n=50):
    lines = []
    for i in range(n):
        if i % 10 == 3:
            lines.append(b'{"messageId": "cut", "type": "tr')  # not JSON
        elif i % 10 == 5:
            lines.append(line(i, timestamp="next tuesday"))
        elif i % 10 == 7:
            lines.append(line(i, properties="[1, 2]"))
        elif i % 10 == 8:
            lines.append(b"[1, 2, 3]")  # JSON, not an object
        else:
            lines.append(line(i))
        if i == 20:
            lines.append(b"   ")  # blank lines are not rows
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_each_reason_with_line_numbers_and_counts(tmp_path):
    chunk = load_export(mixed_file(tmp_path / "x.jsonl"))
    q = chunk.quarantine
    assert {c: str(t) for c, t in q.dtypes.items()} == QUARANTINE
    assert chunk.rows_in == 50 == len(chunk.events) + len(q)
    by = q.groupby("reason")["source_row"].apply(list).to_dict()
    # line numbers: rows after the blank line (after i == 20) sit one line further down
    ln = lambda i: i + 1 + (i > 20)  # noqa: E731
    assert by[Reason.MALFORMED_ROW] == sorted([ln(i) for i in range(50) if i % 10 in (3, 7, 8)])
    assert by[Reason.UNPARSEABLE_TIMESTAMP] == [ln(i) for i in range(50) if i % 10 == 5]
    details = dict(zip(q["source_row"], q["detail"], strict=True))
    assert "next tuesday" in details[ln(5)]
    assert details[ln(3)].startswith(f"line {ln(3)}: not JSON")
    assert "not an object" in details[ln(8)]
    assert q.loc[q["source_row"] == ln(7), "source_event_id"].item() == "m7"
    assert set(chunk.events["source_row"]).isdisjoint(q["source_row"])


def test_long_details_are_truncated(tmp_path):
    (tmp_path / "l.jsonl").write_bytes(b"x" * 5000 + b"\n")
    detail = load_export(tmp_path / "l.jsonl").quarantine["detail"].item()
    assert len(detail) <= 200


@pytest.mark.parametrize("chunk_rows", [1, 3, 7, 1000])
@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_small_chunks_equal_one_chunk(tmp_path, fmt, chunk_rows):
    src = mixed_file(tmp_path / "x.jsonl")
    if fmt != "jsonl":  # the same rows as a warehouse export (the JSONL-only defects left out)
        whole = load_export(src).events
        table = pa.table({"event_id": whole["event_id"].tolist(), "type": whole["type"].tolist(),
                          "event": whole["event"].tolist(), "anonymous_id": whole["anonymous_id"].tolist(),
                          "timestamp": [*map(str, whole["timestamp"].tolist()[:-1]), "bad"],
                          "properties": whole["properties"].tolist()})
        src = tmp_path / f"x.{fmt}"
        if fmt == "csv":
            import pyarrow.csv as pcsv

            pcsv.write_csv(table, src)
        else:
            pq.write_table(table, src)
    one = load_export(src)
    chunks = list(iter_export(src, chunk_rows=chunk_rows))
    assert all(c.rows_in <= chunk_rows for c in chunks) and all(
        c.rows_in == len(c.events) + len(c.quarantine) for c in chunks)
    assert sum(c.rows_in for c in chunks) == one.rows_in
    pd.testing.assert_frame_equal(pd.concat([c.events for c in chunks], ignore_index=True), one.events)
    pd.testing.assert_frame_equal(pd.concat([c.quarantine for c in chunks], ignore_index=True), one.quarantine)
    assert len(one.quarantine) >= 1


def test_csv_rows_with_wrong_field_count_are_quarantined_in_place(tmp_path):
    (tmp_path / "x.csv").write_text(
        "event_id,type,event,anonymous_id,timestamp,properties\n"
        "e1,track,signup,a1,2026-11-02T10:00:00Z,{}\n"
        "e2,track,signup,a2,2026-11-02T10:00:00Z,{},extra\n"
        'e3,track,"multi\nline",a3,2026-11-02T10:00:00Z,"{""revenue"":""1.50""}"\n'
        "e4,track\n"
        "e5,track,signup,a5,1793613600,\n")
    for chunk_rows in (1, 2, 100):
        c = load_export(tmp_path / "x.csv", chunk_rows=chunk_rows)
        assert c.events["event_id"].tolist() == ["e1", "e3", "e5"]
        assert c.events["source_row"].tolist() == [1, 3, 5]
        assert c.events["revenue_raw"].tolist()[1] == "1.50"
        assert c.events["timestamp"].tolist()[2] == 1793613600000
        assert c.quarantine[["source_row", "source_event_id", "reason"]].values.tolist() == [
            [2, "e2", "malformed_row"], [4, "e4", "malformed_row"]]


def test_truncated_gzip_keeps_rows_read_and_reports_one_row(tmp_path):
    body = b"".join(line(i) + b"\n" for i in range(20000))
    data = gzip.compress(body)
    (tmp_path / "t.jsonl.gz").write_bytes(data[: len(data) // 2])
    chunks = list(iter_export(tmp_path / "t.jsonl.gz", chunk_rows=5000))
    events = pd.concat([c.events for c in chunks])
    q = pd.concat([c.quarantine for c in chunks])
    assert 0 < len(events) < 20000
    assert events["source_row"].tolist() == list(range(1, len(events) + 1))
    assert q["reason"].tolist() == [Reason.TRUNCATED_FILE]
    assert q["source_row"].item() == len(events) + 1 and "re-download" in q["detail"].item()
    assert sum(c.rows_in for c in chunks) == len(events) + 1


def test_truncated_gzip_csv(tmp_path):
    rows = "".join(f"e{i},track,signup,a{i},{1793613600000 + i},{{}}\n" for i in range(40000))
    data = gzip.compress(("event_id,type,event,anonymous_id,timestamp,properties\n" + rows).encode())
    (tmp_path / "t.csv.gz").write_bytes(data[: len(data) * 3 // 4])
    c = load_export(tmp_path / "t.csv.gz")
    assert 0 < len(c.events) < 40000
    assert c.quarantine["reason"].tolist() == [Reason.TRUNCATED_FILE]
    assert c.rows_in == len(c.events) + 1


@pytest.mark.parametrize("raw, ms", [
    ("2026-11-02T10:00:00.123Z", 1793613600123),
    ("2026-11-02T11:00:00.123+01:00", 1793613600123),
    ("2026-11-02T10:00:00", 1793613600000),  # no offset: UTC
    ("2026-11-02 10:00:00.123Z", 1793613600123),  # space separator (pyarrow write_csv)
    ("2026-11-02 11:00:00+01:00", 1793613600000),
    ("2026-11-02", 1793577600000),
    (1793613600, 1793613600000),  # epoch seconds
    (1793613600.123, 1793613600123),
    (1793613600123, 1793613600123),  # epoch ms
    ("1793613600123", 1793613600123),
    ("2026-11-02T10:00:00.123456789Z", 1793613600123),  # sub-ms truncated
])
def test_timestamps(tmp_path, raw, ms):
    (tmp_path / "t.jsonl").write_bytes(line(1, timestamp=raw) + b"\n")
    assert load_export(tmp_path / "t.jsonl").events["timestamp"].item() == ms


@pytest.mark.parametrize("raw", ["04/11/2026 10:15", "", None, True, {"t": 1}, "2026-13-45T00:00:00Z", "NaN"])
def test_bad_timestamps(tmp_path, raw):
    (tmp_path / "t.jsonl").write_bytes(line(1, timestamp=raw) + b"\n")
    c = load_export(tmp_path / "t.jsonl")
    assert c.quarantine["reason"].tolist() == [Reason.UNPARSEABLE_TIMESTAMP] and c.events.empty


@pytest.mark.parametrize("written, text", [
    (b"19.99", "19.99"), (b'"19.99"', "19.99"), (b"89.99", "89.99"), (b"1200", "1200"), (b"12.345", "12.345"),
    (b"0.1", "0.1"), (b'" 7,50 "', " 7,50 "), (b"-25.5", "-25.5"), (b"100.0", "100.0"),
    # integers beyond 64 bits are kept exact (orjson would read them as floats, rounded to 17 digits)
    (b"123456789012345678901234567890", "123456789012345678901234567890"),
])
def test_money_kept_as_text(tmp_path, written, text):
    payload = b'{"messageId":"m","type":"track","event":"x","anonymousId":"a","timestamp":1793613600000,' \
              b'"properties":{"total":' + written + b',"value":' + written + b"}}\n"
    (tmp_path / "m.jsonl").write_bytes(payload)
    ev = load_export(tmp_path / "m.jsonl").events
    assert ev["revenue_raw"].item() == text and ev["value_raw"].item() == text
    assert ev["revenue_source"].item() == "total"


def test_revenue_precedence_is_configurable(tmp_path):
    (tmp_path / "p.jsonl").write_bytes(line(1, properties={"revenue": None, "total": 2.5, "value": 9}) + b"\n")
    ev = load_export(tmp_path / "p.jsonl").events
    assert (ev["revenue_raw"].item(), ev["revenue_source"].item()) == ("2.5", "total")  # null revenue skipped
    ev = load_export(tmp_path / "p.jsonl", revenue_keys=("value", "total")).events
    assert (ev["revenue_raw"].item(), ev["revenue_source"].item()) == ("9", "value")


@settings(max_examples=200, deadline=None)
@given(st.decimals(min_value=-10**9, max_value=10**9, places=3, allow_nan=False))
def test_any_short_decimal_number_round_trips_as_text(d):
    text = format(d.normalize(), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".") if text.rstrip("0").rstrip(".") != text else text
    number = orjson.loads(text.encode())
    got = money_text(number)
    assert type(got) is str
    from decimal import Decimal

    assert Decimal(got) == Decimal(text)  # value kept exactly: no float truncation (19.99 never 19.98...)
    if "." in text and "e" not in got.lower():
        assert got == text
