"""Timestamps to UTC epoch milliseconds, vectorized.

Accepted: ISO 8601 strings (``Z``, ``+hh:mm`` offsets, date only; no offset means UTC), epoch
seconds or epoch milliseconds as numbers or digit strings (``|x| < 1e11`` is read as seconds: 1e11 s
is the year 5138, 1e11 ms is 1973), and Arrow timestamp / date columns (naive ones are UTC).
Sub-millisecond digits are truncated. Anything else is *not ok* and the caller quarantines it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["epoch_ms", "epoch_ms_strings", "epoch_ms_numbers", "epoch_ms_arrow"]

_SECONDS_BELOW = 1e11
_NUMERIC = r"[+-]?\d+(?:\.\d*)?"
_ISO_ZONED = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$"


def epoch_ms_numbers(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Epoch seconds or milliseconds (float array, NaN for missing) -> (ms int64, ok)."""
    x = np.asarray(x, dtype="float64")
    ok = np.isfinite(x)
    safe = np.where(ok, x, 0.0)
    ms = np.where(np.abs(safe) < _SECONDS_BELOW, safe * 1000.0, safe)
    ok &= np.abs(ms) < 2**62  # beyond int64 ms there is no calendar date anyway
    # round away float noise (1762041600.123 * 1000 = ...122.9999) before truncating sub-ms digits
    return np.floor(np.round(np.where(ok, ms, 0.0), 3)).astype("int64"), ok


_MS_Z_DIGITS = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22]  # YYYY-MM-DDTHH:MM:SS.fffZ
_MS_Z_MARKS = {4: b"-", 7: b"-", 13: b":", 16: b":", 19: b".", 23: b"Z"}


def _all_ms_z(arr: pa.Array | pa.ChunkedArray) -> bool:
    """Whether every value is ``YYYY-MM-DD(T| )HH:MM:SS.fffZ`` (what most exports write), told from
    the bytes as a fixed-width table: the 24-byte strings ``_ISO_ZONED`` matches, without the regex."""
    if isinstance(arr, pa.ChunkedArray) or arr.null_count or not len(arr) or arr.type != pa.string():
        return False
    n = len(arr)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset:arr.offset + n + 1]
    if offsets[-1] - offsets[0] != 24 * n or not (np.diff(offsets) == 24).all():
        return False
    table = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]].reshape(n, 24)
    digits = table[:, _MS_Z_DIGITS]
    if not ((digits >= ord("0")) & (digits <= ord("9"))).all():
        return False
    sep = table[:, 10]
    return bool(((sep == ord("T")) | (sep == ord(" "))).all()) and \
        all((table[:, i] == ord(c)).all() for i, c in _MS_Z_MARKS.items())


def _fast_iso(arr: pa.Array | pa.ChunkedArray, ms: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Arrow's C parser for the usual ``YYYY-MM-DD(T| )HH:MM:SS[.fff](Z|+hh:mm)`` form (20x pandas);
    returns the positions it handled. Any value it refuses sends the lot to the general path."""
    every = _all_ms_z(arr)
    fast = None if every else pc.fill_null(pc.match_substring_regex(arr, _ISO_ZONED), False)
    mask = np.ones(len(arr), dtype=bool) if every else np.asarray(fast.to_numpy(zero_copy_only=False), dtype=bool)
    if not mask.any():
        return mask
    try:
        parsed = pc.cast(pc.cast(arr if every else arr.filter(fast), pa.timestamp("ms", tz="UTC"), safe=False), pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return np.zeros(len(arr), dtype=bool)
    ms[mask] = np.asarray(parsed.to_numpy(zero_copy_only=False), dtype="int64")
    ok[mask] = True
    return mask


def epoch_ms_strings(strings: pa.Array | pa.ChunkedArray | pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Strings (nulls allowed) -> (ms int64, ok): ISO 8601, or digits read as epoch s / ms."""
    arr = pa.array(strings, type=pa.string()) if isinstance(strings, pd.Series) else strings
    n = len(arr)
    ms = np.zeros(n, dtype="int64")
    ok = np.zeros(n, dtype=bool)
    done = _fast_iso(arr, ms, ok)
    if done.all():
        return ms, ok
    todo = np.flatnonzero(~done)  # the unusual spellings: pandas' general ISO 8601 parser, digits
    s = pd.Series(arr.take(pa.array(todo, type=pa.int64())).to_pylist(), dtype="string").str.strip()
    numeric = s.str.fullmatch(_NUMERIC).fillna(False).to_numpy(dtype=bool)
    if numeric.any():
        nums = pd.to_numeric(s[numeric], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        ms[todo[numeric]], ok[todo[numeric]] = epoch_ms_numbers(nums)
    rest = ~numeric
    if rest.any():
        dt = pd.to_datetime(s[rest], utc=True, format="ISO8601", errors="coerce")
        good = dt.notna().to_numpy(dtype=bool)
        vals = dt.dt.as_unit("ms").to_numpy(dtype="datetime64[ms]").astype("int64")
        idx = todo[rest]
        ms[idx[good]] = vals[good]
        ok[idx[good]] = True
    return ms, ok


def epoch_ms(values: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Python values from JSON (str, int, float, None, anything else) -> (ms int64, ok)."""
    n = len(values)
    try:  # the usual export: every timestamp an ISO 8601 string (anything else but None is refused here)
        strings = pa.array(values, type=pa.string())
    except (pa.ArrowTypeError, pa.ArrowInvalid, OverflowError):
        strings = None
    if strings is not None and not strings.null_count:
        return epoch_ms_strings(strings)
    ms = np.zeros(n, dtype="int64")
    ok = np.zeros(n, dtype=bool)
    kinds = [type(v) for v in values]
    str_idx = [i for i, k in enumerate(kinds) if k is str]
    num_idx = [i for i, k in enumerate(kinds) if k is int or k is float]
    if str_idx:
        strings = pa.array(values if len(str_idx) == n else [values[i] for i in str_idx], type=pa.string())
        ms[str_idx], ok[str_idx] = epoch_ms_strings(strings)
    if num_idx:
        nums = np.array([float(values[i]) for i in num_idx], dtype="float64")
        ms[num_idx], ok[num_idx] = epoch_ms_numbers(nums)
    return ms, ok


def epoch_ms_arrow(col: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """An Arrow column of any usual type (timestamp, date, number, string) -> (ms int64, ok)."""
    t = col.type
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        as_ms = pc.cast(col, pa.timestamp("ms", tz=t.tz if pa.types.is_timestamp(t) else None), safe=False)
        ints = pc.cast(as_ms, pa.int64())
        ok = pc.is_valid(ints).to_numpy(zero_copy_only=False)
        return pc.fill_null(ints, 0).to_numpy(zero_copy_only=False).astype("int64"), ok
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        floats = pc.cast(col, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
        return epoch_ms_numbers(np.asarray(floats, dtype="float64"))
    return epoch_ms_strings(pc.cast(col, pa.string()) if not pa.types.is_string(t) else col)

