"""conform: contract order and dtypes, missing columns as nulls, and the input never changed."""

from __future__ import annotations

import pandas as pd

from toolkit.contracts import QUARANTINE, conform, empty


def test_conform_orders_types_and_fills():
    raw = pd.DataFrame({"reason": ["malformed_row"], "source_row": [7]})
    out = conform(raw, QUARANTINE)
    assert list(out.columns) == list(QUARANTINE)
    assert {c: str(t) for c, t in out.dtypes.items()} == QUARANTINE
    assert out["source_row"].tolist() == [7] and out["detail"].isna().all()


def test_conforming_frame_comes_back_equal_and_independent():
    ready = conform(pd.DataFrame({"source_row": [1, 2], "reason": ["a", "b"]}), QUARANTINE)
    again = conform(ready, QUARANTINE)
    pd.testing.assert_frame_equal(again, ready)
    again.loc[0, "reason"] = "changed"
    again["extra"] = 1
    assert ready["reason"].tolist() == ["a", "b"] and "extra" not in ready.columns


def test_empty_frames_are_independent():
    first = empty(QUARANTINE)
    assert list(first.columns) == list(QUARANTINE) and len(first) == 0
    assert {c: str(t) for c, t in first.dtypes.items()} == QUARANTINE
    first["extra"] = pd.Series(dtype="string")
    first.loc[0, "reason"] = "malformed_row"
    second = empty(QUARANTINE)
    assert list(second.columns) == list(QUARANTINE) and len(second) == 0
