"""Properties to the NORMALIZED property columns, column-wise, with no Python loop per row.

Every per-row step runs inside C: ``map(loads, texts)`` (msgspec), ``map(dict.get, dicts, keys)``,
``map(orjson.dumps, dicts)``, Arrow for building and expanding columns. Python code only touches
the rows that need it: the values of a money field that are not text, and the rows the parser refuses
(which get the careful path of ``_chunk``). JSON text columns from Arrow (CSV, Parquet) are parsed
once per distinct text of the chunk (Arrow's dictionary encoding), then expanded by index.

Text the parser refuses is retried with the standard library (exact decimals):
the outputs are those of ``_chunk``'s one-row functions, only faster.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import compress, repeat
from operator import is_, is_not
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ._values import as_dict, loads, map_careful, money_text, quantity, sorted_texts

__all__ = ["Props", "PropColumns", "from_texts", "from_values", "concat", "parse_texts", "parse_values", "property_columns"]

_GET = dict.get
PropColumns = dict[str, "pa.Array | np.ndarray"]  # column -> Arrow string array, or quantity (values, mask)


def parse_texts(texts: list[str]) -> list[dict | None]:
    """JSON texts (no nulls) -> dict per text, None when it is not a JSON object."""
    parsed = map_careful(loads, texts, as_dict)
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


def _currency(c: Any) -> str | None:
    return (c.strip().upper() or None) if type(c) is str else money_text(c)


def property_columns(dicts: list[dict], revenue_keys: Sequence[str]) -> PropColumns:
    """properties, revenue_raw, revenue_source, currency, value_raw (Arrow) and quantity
    (``(int64 values, null mask)``) for a list of property dicts. Each money key is read from
    every dict by ``map(dict.get, ...)`` (in C); only values that are not text go through Python.
    """
    return _property_columns(dicts, revenue_keys)[0]


def _property_columns(dicts: list[dict], revenue_keys: Sequence[str]) -> tuple[PropColumns, bool]:
    """:func:`property_columns`, and whether every properties text is orjson's sorted-key dump."""
    texts, canonical = sorted_texts(dicts)
    return {"properties": texts, **_money_columns(dicts, revenue_keys)}, canonical


def _texts(vals: list[Any], fn: Callable[[Any], str | None]) -> pa.Array:
    """``fn`` of each value that is not None, null where None, as an Arrow string column. When every
    value is text (the usual export) no per-value Python runs: ``money_text`` keeps text as it is,
    and other functions (``_currency``) run once per distinct text."""
    n = len(vals)
    nones = vals.count(None)
    if nones == n:
        return pa.nulls(n, pa.string())
    kinds = set(map(type, vals))
    kinds.discard(type(None))
    if kinds == {str}:
        texts = pa.array(vals, type=pa.string())
        if fn is money_text:
            return texts
        distinct = pc.unique(texts).drop_null()
        once = [fn(v) for v in distinct.to_pylist()]
        if once == distinct.to_pylist():
            return texts
        return pa.array(once, type=pa.string()).take(pc.index_in(texts, distinct))
    return pa.array([None if v is None else fn(v) for v in vals], type=pa.string())


_PROBE = 256  # dicts looked at to guess whether most rows carry no money key at all


def _money_columns(dicts: list[dict], revenue_keys: Sequence[str]) -> PropColumns:
    """revenue_raw, revenue_source, currency, value_raw and quantity of each dict.

    When most properties hold none of those keys (page views, identifies, activations: in a
    typical export the majority), only the dicts that hold one are read, and the columns expanded
    back with nulls: ~0.3 CPU-s less per 1M rows of the sample export (measured); exports where
    most rows carry money keys skip the extra pass."""
    keys = frozenset((*revenue_keys, "value", "currency", "quantity"))
    n = len(dicts)
    probe = dicts[:_PROBE]
    if n > _PROBE and sum(map(keys.isdisjoint, probe)) * 2 > len(probe):
        none = np.fromiter(map(keys.isdisjoint, dicts), dtype=bool, count=n)
        at = np.flatnonzero(~none)
        if len(at) * 2 < n:
            return _expand(_row_columns(list(map(dicts.__getitem__, at.tolist())), revenue_keys), at, n)
    return _row_columns(dicts, revenue_keys)


def _expand(columns: PropColumns, at: np.ndarray, n: int) -> PropColumns:
    """Columns of the rows at positions ``at`` as columns of ``n`` rows (the others null)."""
    pos = np.full(n, -1, dtype=np.int64)
    pos[at] = np.arange(len(at))
    take = pa.array(pos, mask=pos < 0)
    out: dict[str, Any] = {}
    for name, col in columns.items():
        if name == "quantity":
            values, mask = np.zeros(n, dtype="int64"), np.ones(n, dtype=bool)
            values[at], mask[at] = col
            out[name] = (values, mask)
        else:
            out[name] = col.take(take)
    return out


def _row_columns(dicts: list[dict], revenue_keys: Sequence[str]) -> PropColumns:
    n = len(dicts)
    columns: dict[str, Any] = {}
    held = set().union(*dicts)  # every name some dict holds (one pass in C): the others are all null

    def read(key: str, fn: Callable[[Any], str | None] = money_text) -> pa.Array:
        return _texts(list(map(_GET, dicts, repeat(key))), fn) if key in held else pa.nulls(n, pa.string())

    texts = {key: read(key) for key in dict.fromkeys((*revenue_keys, "value"))}  # "value" read once
    revs = [texts[key] for key in revenue_keys]
    source = np.full(n, -1, dtype=np.int32)  # the first revenue key present in each dict
    for j in range(len(revs) - 1, -1, -1):
        if revs[j].null_count < n:
            source[pc.is_valid(revs[j]).to_numpy(zero_copy_only=False)] = j
    columns["revenue_raw"] = (revs[0] if len(revs) == 1 else pc.coalesce(*revs)) if revs else pa.nulls(n, pa.string())
    columns["revenue_source"] = pa.array(list(revenue_keys), type=pa.string()).take(pa.array(source, mask=source < 0))
    columns["currency"] = read("currency", _currency)
    columns["value_raw"] = texts["value"]

    qty = np.zeros(n, dtype="int64")
    mask = np.ones(n, dtype=bool)
    vals = list(map(_GET, dicts, repeat("quantity"))) if "quantity" in held else []
    for i in _present(vals).tolist():
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
    canonical: bool = True  # every properties text is orjson.dumps(object, option=OPT_SORT_KEYS)

    def __len__(self) -> int:
        return len(self.bad)

    def filter(self, keep: np.ndarray) -> PropColumns:
        """The columns of the rows kept."""
        if keep.all():
            return self.columns
        mask = pa.array(keep)
        return {name: (col[0][keep], col[1][keep]) if name == "quantity" else col.filter(mask)
                for name, col in self.columns.items()}


def _bad_and_columns(dicts: list[dict | None],
                     revenue_keys: Sequence[str]) -> tuple[np.ndarray, PropColumns, bool]:
    if dicts.count(None) == 0:
        return np.zeros(len(dicts), dtype=bool), *_property_columns(dicts, revenue_keys)  # type: ignore[arg-type]
    bad = np.fromiter(map(is_, dicts, repeat(None)), dtype=bool, count=len(dicts))
    if bad.any():
        dicts = [{} if d is None else d for d in dicts]
    return bad, *_property_columns(dicts, revenue_keys)  # type: ignore[arg-type]


def from_values(values: Sequence[Any], revenue_keys: Sequence[str]) -> Props:
    """Properties as read (dict, JSON text, None, anything else), one per row."""
    bad, columns, canonical = _bad_and_columns(parse_values(values), revenue_keys)
    shown = {i: values[i] if isinstance(values[i], str) else repr(values[i]) for i in np.flatnonzero(bad).tolist()}
    return Props(bad, columns, shown, canonical)


def from_texts(texts: pa.Array, revenue_keys: Sequence[str]) -> Props:
    """A column of JSON texts (no nulls): each distinct text is parsed once, then expanded."""
    enc = pc.dictionary_encode(texts)
    bad, columns, canonical = _bad_and_columns(parse_texts(enc.dictionary.to_pylist()), revenue_keys)
    pos = enc.indices.to_numpy(zero_copy_only=False)
    bad = bad[pos]
    shown = {i: texts[i].as_py() for i in np.flatnonzero(bad).tolist()}
    columns = {name: (col[0][pos], col[1][pos]) if name == "quantity" else pc.take(col, enc.indices)
               for name, col in columns.items()}
    return Props(bad, columns, shown, canonical)


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
    return Props(np.concatenate([p.bad for p in parts]), columns, shown, all(p.canonical for p in parts))
