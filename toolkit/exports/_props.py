"""Properties to the NORMALIZED property columns, column-wise, with no Python loop per row.

Every per-row step runs inside C: ``map(orjson.loads, texts)``, ``map(dict.get, dicts, keys)``,
``map(orjson.dumps, dicts)``, Arrow for building and expanding columns. Python code only touches
the rows that need it: the few values of a money field that are present, and the rows orjson refuses
(which get the careful path of ``_chunk``). JSON text columns from Arrow (CSV, Parquet) are parsed
once per distinct text of the chunk (Arrow's dictionary encoding), then expanded by index.

Text that orjson refuses is retried with the standard library (exact decimals, huge integers):
the outputs are those of ``_chunk``'s one-row functions, only faster.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from itertools import compress, repeat
from operator import is_, is_not
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from ._values import as_dict, dumps, map_careful, money_text, quantity

__all__ = ["Props", "PropColumns", "from_texts", "from_values", "concat", "parse_texts", "parse_values", "property_columns"]

_SORTED = partial(orjson.dumps, option=orjson.OPT_SORT_KEYS)  # str keys: the fast path of orjson
_GET = dict.get
_MARKER = "\x00"  # written by orjson as "\u0000": the cut pattern below, between two dicts
_CUT = b',"\\u0000",'
_MAX_BLOB = 1 << 30  # Arrow binary values hold < 2 GiB
PropColumns = dict[str, "pa.Array | np.ndarray"]  # column -> Arrow string array, or quantity (values, mask)


def parse_texts(texts: list[str]) -> list[dict | None]:
    """JSON texts (no nulls) -> dict per text, None when it is not a JSON object."""
    parsed = map_careful(orjson.loads, texts, as_dict)
    if not _all_dicts(parsed):
        parsed = [d if type(d) is dict else None for d in parsed]
    return parsed


def parse_values(values: Sequence[Any]) -> list[dict | None]:
    """Properties as read (dict, JSON text, None, anything else) -> dict, or None when not an object."""
    if _all_dicts(values):
        return values if isinstance(values, list) else list(values)
    return [v if type(v) is dict else as_dict(v) for v in values]


def _all_dicts(values: Sequence[Any]) -> bool:
    return not values or set(map(type, values)) == {dict}


def _present(values: list[Any]) -> np.ndarray:
    """Positions of the values that are not None."""
    if values.count(None) == len(values):
        return np.zeros(0, dtype="int64")
    return np.fromiter(compress(range(len(values)), map(is_not, values, repeat(None))), dtype="int64")


def _text_column(n: int, idx: np.ndarray, texts: list[str | None]) -> pa.Array:
    """A string column of ``n`` nulls with ``texts`` at positions ``idx``."""
    if len(idx) == n:
        return pa.array(texts, type=pa.string())
    full: list[str | None] = [None] * n
    for i, t in zip(idx.tolist(), texts, strict=True):
        full[i] = t
    return pa.array(full, type=pa.string())


def _currency(c: Any) -> str | None:
    return (c.strip().upper() or None) if type(c) is str else money_text(c)


def _dumped(dicts: list[dict]) -> pa.Array:
    """The canonical text (sorted keys, compact) of each dict, as an Arrow string array.

    One ``orjson.dumps`` of the whole list with a marker string between the dicts, cut by Arrow at
    the markers: no Python object per row (one bytes object per dict costs ~10x the serializing).
    The marker can only occur inside a dict's text as a whole (its text has no ``}``), so the cut
    is exact when it yields one piece per dict; otherwise, and for what orjson cannot write
    (non-string keys, Decimal, huge integers), each dict is written on its own.
    """
    mixed: list[Any] = [_MARKER] * (2 * len(dicts) - 1)
    mixed[::2] = dicts
    try:
        blob = orjson.dumps(mixed, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return pa.array([dumps(d) for d in dicts], type=pa.string())
    if len(blob) < _MAX_BLOB:
        pieces = pc.split_pattern(pa.array([blob[1:-1]], type=pa.binary()), pattern=_CUT).flatten()
        if len(pieces) == len(dicts):
            return pieces.cast(pa.string())
    return pa.array(list(map(_SORTED, dicts)), type=pa.binary()).cast(pa.string())


def property_columns(dicts: list[dict], revenue_keys: Sequence[str]) -> PropColumns:
    """properties, revenue_raw, revenue_source, currency, value_raw (Arrow) and quantity
    (``(int64 values, null mask)``) for a list of property dicts.

    Only the rows holding one of the money keys are looked at further (``set.isdisjoint`` in C).
    """
    n = len(dicts)
    texts = _dumped(dicts) if n else pa.array([], type=pa.string())
    keys = frozenset({*revenue_keys, "currency", "value", "quantity"})
    rows = np.flatnonzero(~np.fromiter(map(keys.isdisjoint, dicts), dtype=bool, count=n))
    money = _money_columns([dicts[i] for i in rows.tolist()] if len(rows) < n else dicts, revenue_keys)
    if len(rows) == n:
        return {"properties": texts, **money}
    pos = np.zeros(n, dtype="int64")
    pos[rows] = np.arange(len(rows))
    absent = np.ones(n, dtype=bool)
    absent[rows] = False
    at = pa.array(pos, mask=absent)
    out: dict[str, Any] = {"properties": texts}
    for name, col in money.items():
        if name == "quantity":
            values, mask = np.zeros(n, dtype="int64"), np.ones(n, dtype=bool)
            values[rows], mask[rows] = col
            out[name] = (values, mask)
        else:
            out[name] = col.take(at)
    return out


def _money_columns(dicts: list[dict], revenue_keys: Sequence[str]) -> PropColumns:
    """revenue_raw, revenue_source, currency, value_raw and quantity of each dict."""
    n = len(dicts)
    columns: dict[str, Any] = {}
    open_rows = np.ones(n, dtype=bool)  # rows still without a revenue value
    rev_idx: list[np.ndarray] = []
    rev_text: list[str | None] = []
    src: list[str] = []
    for key in revenue_keys:
        vals = list(map(_GET, dicts, repeat(key)))
        idx = _present(vals)
        idx = idx[open_rows[idx]]
        open_rows[idx] = False
        rev_idx.append(idx)
        rev_text += [money_text(vals[i]) for i in idx.tolist()]
        src += [key] * len(idx)
    order = np.concatenate(rev_idx)
    if len(order) > 1:
        by_row = np.argsort(order, kind="stable")
        order = order[by_row]
        rev_text = [rev_text[i] for i in by_row.tolist()]
        src = [src[i] for i in by_row.tolist()]
    columns["revenue_raw"] = _text_column(n, order, rev_text)
    columns["revenue_source"] = _text_column(n, order, src)

    for name, key, fn in (("currency", "currency", _currency), ("value_raw", "value", money_text)):
        vals = list(map(_GET, dicts, repeat(key)))
        idx = _present(vals)
        columns[name] = _text_column(n, idx, [fn(vals[i]) for i in idx.tolist()])

    vals = list(map(_GET, dicts, repeat("quantity")))
    idx = _present(vals)
    qty = np.zeros(n, dtype="int64")
    mask = np.ones(n, dtype=bool)
    for i in idx.tolist():
        q = quantity(vals[i])
        if q is not None:
            qty[i], mask[i] = q, False
    columns["quantity"] = (qty, mask)
    return columns


@dataclass(frozen=True)
class Props:
    """The property columns of every row of a chunk; rows whose properties are not a JSON object
    are flagged in ``bad`` (their columns are those of ``{}``) and shown as read in ``shown``."""

    bad: np.ndarray  # bool per row
    columns: PropColumns
    shown: dict[int, str]  # row position -> the properties value as read, for the quarantine detail

    def __len__(self) -> int:
        return len(self.bad)

    def filter(self, keep: np.ndarray) -> PropColumns:
        """The columns of the rows kept."""
        if keep.all():
            return self.columns
        mask = pa.array(keep)
        return {name: (col[0][keep], col[1][keep]) if name == "quantity" else col.filter(mask)
                for name, col in self.columns.items()}


def _bad_and_columns(dicts: list[dict | None], revenue_keys: Sequence[str]) -> tuple[np.ndarray, PropColumns]:
    if dicts.count(None) == 0:
        return np.zeros(len(dicts), dtype=bool), property_columns(dicts, revenue_keys)  # type: ignore[arg-type]
    bad = np.fromiter(map(is_, dicts, repeat(None)), dtype=bool, count=len(dicts))
    if bad.any():
        dicts = [{} if d is None else d for d in dicts]
    return bad, property_columns(dicts, revenue_keys)  # type: ignore[arg-type]


def from_values(values: Sequence[Any], revenue_keys: Sequence[str]) -> Props:
    """Properties as read (dict, JSON text, None, anything else), one per row."""
    bad, columns = _bad_and_columns(parse_values(values), revenue_keys)
    shown = {i: values[i] if isinstance(values[i], str) else repr(values[i]) for i in np.flatnonzero(bad).tolist()}
    return Props(bad, columns, shown)


def from_texts(texts: pa.Array, revenue_keys: Sequence[str]) -> Props:
    """A column of JSON texts (no nulls): each distinct text is parsed once, then expanded."""
    enc = pc.dictionary_encode(texts)
    bad, columns = _bad_and_columns(parse_texts(enc.dictionary.to_pylist()), revenue_keys)
    pos = enc.indices.to_numpy(zero_copy_only=False)
    bad = bad[pos]
    shown = {i: texts[i].as_py() for i in np.flatnonzero(bad).tolist()}
    columns = {name: (col[0][pos], col[1][pos]) if name == "quantity" else pc.take(col, enc.indices)
               for name, col in columns.items()}
    return Props(bad, columns, shown)


def concat(parts: list[Props]) -> Props:
    """The rows of several parts, in order."""
    if len(parts) == 1:
        return parts[0]
    columns: dict[str, Any] = {}
    for name in parts[0].columns:
        cols = [p.columns[name] for p in parts]
        columns[name] = ((np.concatenate([c[0] for c in cols]), np.concatenate([c[1] for c in cols]))
                         if name == "quantity" else pa.concat_arrays(cols))
    shown: dict[int, str] = {}
    offset = 0
    for p in parts:
        shown.update({offset + i: v for i, v in p.shown.items()})
        offset += len(p)
    return Props(np.concatenate([p.bad for p in parts]), columns, shown)
