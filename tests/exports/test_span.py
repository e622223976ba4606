"""Byte-range parts of an uncompressed JSON Lines file are the parts the line reader cuts: same
bytes, first line, rows, boundaries, whatever the lines (blank, whitespace-only, indented, CRLF, no
final newline, longer than the read block)."""

from __future__ import annotations

import pickle

from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit.exports._jsonl import iter_jsonl_parts
from toolkit.exports._span import JsonlSpan, iter_jsonl_spans

KEYS = ("revenue", "total", "value")
_LINES = st.sampled_from([
    b'{"messageId":"m","type":"track","event":"Order Completed","properties":{"total":"9.99"}}',
    b'{"a":1}', b"", b"  ", b"\t \r", b'  {"indented":true}', b"not json", b"[1,2]", b'{"long":"' + b"x" * 300 + b'"}',
])


def _spans_match_parts(tmp_path, data: bytes, chunk_rows: int, block_bytes: int, mapped: bool) -> None:
    path = tmp_path / "export.jsonl"
    path.write_bytes(data)
    parts = list(iter_jsonl_parts(path, False, chunk_rows, KEYS))
    spans = list(iter_jsonl_spans(path, chunk_rows, KEYS, block_bytes=block_bytes, mapped=mapped))
    assert [(s.first_line, s.rows_in) for s in spans] == [(p.first_line, p.rows_in) for p in parts]
    assert [data[s.offset:s.offset + s.length] for s in spans] == [p.data for p in parts]
    assert all(p.cut is None for p in parts)


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(_LINES, max_size=30), crlf=st.booleans(), final_newline=st.booleans(),
       chunk_rows=st.integers(1, 7), block_bytes=st.sampled_from([1, 7, 64, 1 << 20]), mapped=st.booleans())
def test_spans_are_the_line_reader_parts(tmp_path_factory, lines, crlf, final_newline, chunk_rows, block_bytes, mapped):
    """Scanning a mapping of the file (windows at page-aligned offsets) or reading it in blocks."""
    sep = b"\r\n" if crlf else b"\n"
    data = sep.join(lines) + (sep if final_newline and lines else b"")
    _spans_match_parts(tmp_path_factory.mktemp("span"), data, chunk_rows, block_bytes, mapped)


def test_windows_cross_page_boundaries_and_grow_for_long_lines(tmp_path):
    lines = [b'{"n":%d,"pad":"%s"}' % (i, b"x" * (i * 37 % 9000)) for i in range(400)]  # some > a page
    data = b"\n".join(lines) + b"\n\n   \n" + b'{"last":1}'
    for block in (4096, 5000, 1 << 16):
        for chunk_rows in (1, 3, 50):
            _spans_match_parts(tmp_path, data, chunk_rows, block, mapped=True)


def test_a_span_loads_as_the_part_and_travels_by_pickle(tmp_path):
    data = b"".join(b'{"messageId":"m%d","type":"track","event":"E","timestamp":"2026-01-01T00:00:00Z"}\n' % i
                    for i in range(25)) + b"\n  \n" + b'{"type":"track"}\n' + b"oops\n"
    path = tmp_path / "export.jsonl"
    path.write_bytes(data)
    parts = list(iter_jsonl_parts(path, False, 10, KEYS))
    spans = [pickle.loads(pickle.dumps(s)) for s in iter_jsonl_spans(path, 10, KEYS, block_bytes=100)]
    assert len(spans) == len(parts) == 3
    for s, p in zip(spans, parts, strict=True):
        a, b = s.raw(), p.raw()
        assert a.rejected == b.rejected and list(a.source_row) == list(b.source_row)
        assert all(a.ids[k].equals(b.ids[k]) for k in a.ids)


def test_a_file_that_shrinks_after_it_was_cut_is_one_clear_error(tmp_path):
    import pytest

    from toolkit.errors import ExportError

    path = tmp_path / "export.jsonl"
    path.write_bytes(b'{"a":1}\n' * 20)
    last = list(iter_jsonl_spans(path, 5, KEYS))[-1]
    assert isinstance(last, JsonlSpan)
    path.write_bytes(b'{"a":1}\n' * 3)
    with pytest.raises(ExportError, match="got shorter while it was read"):
        last.raw()


def test_a_file_that_shrinks_while_it_is_cut_is_one_clear_error(tmp_path):
    import pytest

    from toolkit.errors import ExportError

    path = tmp_path / "export.jsonl"
    path.write_bytes(b'{"a":1}\n' * 5000)  # 40 KB: ten 4 KB windows
    spans = iter_jsonl_spans(path, 100, KEYS, block_bytes=4096, mapped=True)
    next(spans)
    path.write_bytes(b'{"a":1}\n' * 10)  # truncated in place, between two windows
    with pytest.raises(ExportError, match="got shorter while it was cut"):
        list(spans)
