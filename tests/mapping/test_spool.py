"""Objects handed between processes through files: the same object back, arrays writable, file gone."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pyarrow as pa

from toolkit.contracts import EVENTS, conform
from toolkit.spool import Spool, put, take


def test_a_frame_comes_back_equal_and_writable_and_the_file_is_removed():
    frame = conform(pd.DataFrame({
        "kind": ["conversion", None, "impression"], "uuid": ["a", "b", "é\u2028"], "timestamp": [1, None, 3],
        "revenue": [100, 200, None], "value": [1.5, None, 2.0], "enabled": [True, None, False],
        "tags": ['{"x":1}', "{}", "{}"],
    }), EVENTS)
    obj = {"events": frame, "ints": np.arange(10, dtype=np.int64), "arrow": pa.array(["x", None] * 50),
           "counts": {"a": 1}}
    spool = Spool()
    try:
        path = put(obj, spool.folder)
        back = take(path)
        assert not os.listdir(spool.folder)  # taken: the file is gone
        pd.testing.assert_frame_equal(back["events"], frame)
        assert back["arrow"].equals(obj["arrow"]) and back["counts"] == {"a": 1}
        assert np.array_equal(back["ints"], obj["ints"])
        back["ints"][0] = 7  # arrays over the mapped file are writable, copy on write
        back["events"].loc[0, "revenue"] = 5
        assert obj["ints"][0] == 0
    finally:
        spool.close()


def test_close_removes_what_was_not_taken():
    spool = Spool()
    put(list(range(5)), spool.folder)
    spool.close()
    assert not os.path.exists(spool.folder)
