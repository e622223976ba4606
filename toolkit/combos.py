"""Rows numbered by their combination of several columns' values, with the loops in C.

Used where many rows share a few combinations: the ledger stores each event's shape (kind, key,
entity and decision ids) once per combination, and impressions' decision text is built once per
combination (:mod:`toolkit.snapshots`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["combination_codes"]


def _codes(column: pa.Array | pd.Series) -> np.ndarray:
    """Per row, the number of its value among the column's distinct values (0: null)."""
    if isinstance(column, pd.Series):
        arr = getattr(column.array, "_pa_array", None)  # Arrow-backed: encoded in C
        if arr is None:
            codes, _ = pd.factorize(column, use_na_sentinel=True)
            return codes.astype(np.int64) + 1
        column = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    return pc.fill_null(pc.dictionary_encode(column).indices, -1).to_numpy(zero_copy_only=False).astype(np.int64) + 1


def combination_codes(columns: Sequence[pa.Array | pd.Series], n: int) -> tuple[np.ndarray, np.ndarray]:
    """For ``n`` rows: per row, the number of its combination of the columns' values (nulls are
    values too), numbered in order of first appearance, and the first row of each combination."""
    code = np.zeros(n, dtype=np.int64)
    for column in columns:
        digit = _codes(column)
        code, _ = pd.factorize(code * (int(digit.max(initial=0)) + 1) + digit)  # < (n + 1)^2: no overflow
    if n == 0:
        return code.astype(np.int64), np.zeros(0, dtype=np.int64)
    is_first = np.empty(n, dtype=bool)  # combination k first appears after combinations 0..k-1
    is_first[0] = True
    is_first[1:] = code[1:] > np.maximum.accumulate(code)[:-1]
    return code.astype(np.int64), np.flatnonzero(is_first)
