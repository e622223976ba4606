"""The column-wise snapshot JSON (Arrow concatenation, impressions' decisions built once per
distinct combination) equals, row for row, orjson's text of the snapshot dict the SDK would build:
on odd values (quotes, backslashes, control characters, non-ASCII, empty and null strings,
variation ids that are not digits, enabled null), mixed kinds, any order."""

from __future__ import annotations

import orjson
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit.contracts import EVENTS, conform
from toolkit.snapshots import snapshot_dict, snapshot_json

_TEXT = st.one_of(st.none(), st.sampled_from(["", "1", "40001", "exp_a", 'q"uote', "back\\slash", "tab\t", "nl\n",
                                              "é ü 😀", "\x00", "7x"]))
_FEW = st.one_of(st.none(), st.sampled_from(["", "51001", "exp", 'x"y']))  # few values: combinations repeat


@st.composite
def _rows(draw) -> dict:
    kind = draw(st.sampled_from(["conversion", "impression", "impression"]))
    row = {c: None for c in EVENTS}
    row.update(kind=kind, uuid=draw(_TEXT), visitor_id="v", timestamp=draw(st.one_of(st.none(), st.integers(0, 2**53))))
    if kind == "conversion":
        row.update(key=draw(_TEXT), entity_id=draw(_TEXT), revenue=draw(st.one_of(st.none(), st.integers(-10, 10**12))),
                   value=draw(st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False))),
                   tags=draw(st.sampled_from([None, "{}", '{"a":1}', '{"q":"\\""}'])))
    else:
        row.update(key="campaign_activated", campaign_id=draw(_FEW), experiment_id=draw(_FEW),
                   variation_id=draw(st.one_of(_FEW, _TEXT)), flag_key=draw(_FEW), rule_key=draw(_FEW),
                   rule_type=draw(st.sampled_from([None, "", "experiment", "a/b"])), variation_key=draw(_FEW),
                   enabled=draw(st.sampled_from([None, True, False])))
    return row


@settings(max_examples=300, deadline=None)
@given(st.lists(_rows(), max_size=40))
def test_snapshot_json_is_orjson_of_the_sdk_snapshot_dict(rows):
    frame = conform(pd.DataFrame(rows, columns=list(EVENTS)), EVENTS)
    got = snapshot_json(frame).to_pylist()
    records = [{c: None if v is pd.NA else v for c, v in r.items()} for r in frame.to_dict("records")]
    assert got == [orjson.dumps(snapshot_dict(r)).decode() for r in records]
