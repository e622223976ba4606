"""The events file writer builds its lines column-wise; each line must be exactly what
``orjson.dumps`` of the event's record gives (the reference), whatever the values, and the file
must read back into the same frame."""

from __future__ import annotations

import orjson
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit.contracts import EVENTS, conform
from toolkit.events_io import events_to_records, read_events_jsonl, write_events_jsonl

_TEXT = st.one_of(st.none(), st.text(max_size=12),
                  st.sampled_from(['a"b', "back\\slash", "tab\there", "new\nline", "\x00\x1f\x7f", "é ü 中 🎉", ""]))
_TAGS = st.one_of(st.none(), st.just(""), st.just("{}"), st.dictionaries(
    st.text(max_size=5), st.one_of(st.text(max_size=6), st.integers(-10**12, 10**12), st.booleans(),
                                   st.floats(allow_nan=False, allow_infinity=False)), max_size=4)
    .map(lambda d: orjson.dumps(d, option=orjson.OPT_SORT_KEYS).decode()))


@st.composite
def _frames(draw) -> pd.DataFrame:
    n = draw(st.integers(0, 6))
    cols = {}
    for col, dtype in EVENTS.items():
        if col == "tags":
            cols[col] = draw(st.lists(_TAGS, min_size=n, max_size=n))
        elif dtype == "string":
            cols[col] = draw(st.lists(_TEXT, min_size=n, max_size=n))
        elif dtype == "Int64":
            cols[col] = draw(st.lists(st.one_of(st.none(), st.integers(-2**62, 2**62)), min_size=n, max_size=n))
        elif dtype == "Float64":
            cols[col] = draw(st.lists(st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False),
                                                st.sampled_from([0.1, 1e20, -0.0, 123456.789, 1e-7])),
                                      min_size=n, max_size=n))
        else:
            cols[col] = draw(st.lists(st.one_of(st.none(), st.booleans()), min_size=n, max_size=n))
    return conform(pd.DataFrame({c: pd.array(v, dtype=EVENTS[c]) for c, v in cols.items()}), EVENTS)


@settings(max_examples=200, deadline=None)
@given(frame=_frames())
def test_each_line_is_the_record_as_orjson_writes_it(tmp_path_factory, frame):
    path = tmp_path_factory.mktemp("events") / "events.jsonl"
    assert write_events_jsonl(frame, path) == len(frame)
    expected = b"".join(orjson.dumps(r) + b"\n" for r in events_to_records(frame))
    assert path.read_bytes() == expected


def test_the_file_reads_back_as_the_frame_and_appends(tmp_path):
    frame = conform(pd.DataFrame({
        "kind": ["conversion", "impression"], "uuid": ["u1", "u2"], "visitor_id": ['v"1', "v\\2"],
        "timestamp": [1, 2], "key": ["purchase", "campaign_activated"], "revenue": [1999, None],
        "value": [19.99, None], "tags": ['{"currency":"GBP","revenue":1999}', "{}"], "enabled": [None, True],
        "synthesized": [False, True]}), EVENTS)
    path = tmp_path / "events.jsonl"
    write_events_jsonl(frame, path)
    write_events_jsonl(frame.iloc[:1], path, append=True)
    back = read_events_jsonl(path)
    assert len(back) == 3
    pd.testing.assert_frame_equal(back.iloc[:2].reset_index(drop=True), frame.reset_index(drop=True))
