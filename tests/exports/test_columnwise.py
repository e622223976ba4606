"""The column-wise fast paths give, row for row, what the one-value reference functions give.

The loader builds its property columns in bulk (one orjson.dumps per block cut at marker strings,
JSON texts parsed once per distinct text, money fields read only on rows naming a money key).
Here every kept row is recomputed from its source line with ``toolkit.exports._values`` and
compared, on lines chosen to trip the shortcuts: the marker text inside values and keys, nested
money keys, huge integers, non-object properties, ids of every JSON type, absent vs null aliases.
"""

from __future__ import annotations

import json
import random

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from toolkit.exports import load_export
from toolkit.exports._values import as_dict, dumps, money_text, parse_json, quantity

ODD = [None, 1, 2.5, "19.99", " gbp ", True, {"a": "\x00"}, ["\x00", {"revenue": 1}], [1, "\x00", 2], 10**30, "", "3", "+-4",
       1e16, "\x00", 'x"y', ',"\\u0000",', "x\\u0000",
       # currencies Arrow's ASCII kernels must leave to Python: Unicode case and space rules
       "ß", "\u00a0gbp\u2003", " eur\x1f", "\u01c6", "usd\x85", "\t"]
KEYS = ["revenue", "total", "value", "currency", "quantity", "z", "\x00", "products", '"total":']


def odd_lines(n: int, seed: int) -> list[dict]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        ev: dict = {"timestamp": 1793613600000 + i}
        for k in ("messageId", "event_id", "message_id", "type", "event", "name", "userId", "user_id", "anonymousId",
                  "anonymous_id"):
            if rnd.random() < 0.6:
                ev[k] = rnd.choice([*ODD, f"id{i}", f"id{i}"])
        roll = rnd.random()
        if roll < 0.1:
            ev["properties"] = rnd.choice(["[1]", "null", '{"total": 5}', "  ", 5, None, "{bad"])
        elif roll < 0.95:
            ev["properties"] = {k: rnd.choice(ODD) for k in rnd.sample(KEYS, rnd.randrange(0, 7))}
        out.append(ev)
    return out


def expected_row(props) -> dict:
    d = as_dict(props)
    assert d is not None
    rev = next(((money_text(d[k]), k) for k in ("revenue", "total", "value") if d.get(k) is not None), (None, None))
    cur = d.get("currency")
    cur = cur if cur is None else (cur.strip().upper() or None) if isinstance(cur, str) else money_text(cur)
    return {"properties": dumps(d), "revenue_raw": rev[0], "revenue_source": rev[1], "currency": cur,
            "value_raw": money_text(d.get("value")),
            "quantity": None if d.get("quantity") is None else quantity(d["quantity"])}


def check(chunk, lines: list[dict]) -> None:
    ev = chunk.events
    assert len(ev) + len(chunk.quarantine) == len(lines)
    assert len(ev) > len(lines) // 2
    for row in ev.to_dict("records"):
        source = parse_json(json.dumps(lines[row["source_row"] - 1]))  # the line as the loader reads it
        want = expected_row(source.get("properties"))
        got = {k: None if row[k] is pd.NA else row[k] for k in want}
        assert got == want, row["source_row"]


@pytest.mark.parametrize("chunk_rows", [5000, 333])
def test_jsonl_columns_equal_the_row_reference(tmp_path, chunk_rows):
    lines = odd_lines(3000, seed=chunk_rows)
    path = tmp_path / "odd.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in lines))
    chunk = load_export(path, chunk_rows=chunk_rows)
    check(chunk, lines)
    for col, keys in (("event_id", ("messageId", "event_id", "message_id")), ("event", ("event", "name")),
                      ("user_id", ("userId", "user_id")), ("anonymous_id", ("anonymousId", "anonymous_id"))):
        got = chunk.events.set_index("source_row")[col]
        for i in got.index:  # the first alias present wins, even when it is null; scalars as text
            source = parse_json(json.dumps(lines[i - 1]))
            first = next((source[k] for k in keys if k in source), None)
            want = None if first is None else first if isinstance(first, str) else \
                ("true" if first else "false") if isinstance(first, bool) else \
                repr(first) if isinstance(first, float) else str(first)
            assert (None if got.loc[i] is pd.NA else got.loc[i]) == want, (col, i)


def test_jsonl_columns_equal_the_row_reference_when_most_rows_carry_no_money(tmp_path):
    """Most rows without any money key (page views, identifies): the loader reads only the rows
    that have one and expands the columns back; the same columns as reading every row."""
    from toolkit.exports import _props

    lines = odd_lines(6000, seed=5)
    money = {"revenue", "total", "value", "currency", "quantity"}
    for i, e in enumerate(lines):
        if i % 5 and isinstance(e.get("properties"), dict):
            e["properties"] = {k: v for k, v in e["properties"].items() if k not in money}
    path = tmp_path / "mostly-pages.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in lines))
    calls = []
    expand = _props._expand
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_props, "_expand", lambda *a: calls.append(1) or expand(*a))
        chunk = load_export(path, chunk_rows=5000)
    assert calls  # the subset path ran
    check(chunk, lines)


def test_parquet_json_text_columns_equal_the_row_reference(tmp_path):
    lines = odd_lines(3000, seed=11)
    texts = [e.get("properties") if isinstance(e.get("properties"), str | None)
             else json.dumps(e["properties"]) for e in lines]
    lines = [{**e, "properties": t} for e, t in zip(lines, texts, strict=True)]
    lines = [e for e in lines if not isinstance(e["properties"], int)]
    table = pa.table({"event_id": [f"e{i}" for i in range(len(lines))],
                      "timestamp": pa.array([e["timestamp"] for e in lines], pa.int64()),
                      "properties": pa.array([e["properties"] for e in lines], pa.string())})
    pq.write_table(table, tmp_path / "odd.parquet")
    check(load_export(tmp_path / "odd.parquet", chunk_rows=1000), lines)


def test_text_only_money_columns_equal_the_row_reference(tmp_path):
    """Money keys holding only text (or null) take the one-conversion path: same answers."""
    texts = [None, "", " gbp ", "usd", "ß", "\u00a0gbp\u2003", " eur\x1f", "\u01c6", "usd\x85", "\t", "19.99", "x\x00"]
    rnd = random.Random(5)
    lines = [{"messageId": f"m{i}", "timestamp": 1793613600000 + i,
              "properties": {k: rnd.choice(texts) for k in rnd.sample(["revenue", "total", "value", "currency"],
                                                                       rnd.randrange(0, 5))}}
             for i in range(2000)]
    path = tmp_path / "text.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in lines))
    chunk = load_export(path)
    check(chunk, lines)
    assert {"SS", "GBP", "\u01c4"} <= set(chunk.events["currency"].dropna())  # Unicode upper-casing kept
