"""Event tags from export properties: the tag rules of the blueprint, one row or a whole column.

Rules (``[tags]`` in the blueprint): scalar properties (text, numbers, booleans) are tags as they
are; a list becomes ``<name>_count`` (or is dropped); an object is flattened one level with dotted
keys (its scalar values only) or dropped; nulls and excluded names are left out. ``revenue``,
``value`` and ``currency`` are never passed through raw: the mapper sets them (revenue in minor
units, value as a number, currency as the normalized code). Tags are sorted-key JSON text.

:func:`conversion_tags` does this for a column of properties JSON texts, parsing each text once
(orjson); a text with no sign of a list, an object or a null in it (the common case) takes a short
path that only removes the money names. :func:`conversion_tags_column` first sets aside, with Arrow
kernels (RE2), the rows whose tags are their properties text as it is (texts written by the loader:
orjson, sorted keys), and runs the row loop on the others only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import repeat
from operator import is_

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from .blueprint import TagRules

__all__ = ["build_tags", "conversion_tags", "conversion_tags_column", "parse_objects"]

_MONEY_TAGS = frozenset({"revenue", "value", "currency"})
_SCALARS = frozenset({str, int, float, bool})  # orjson never yields NaN/inf: JSON has none
_EMPTY = frozenset({None, "", "{}"})


def _tag_dict(props: dict, rules: TagRules) -> dict[str, object]:
    out: dict[str, object] = {}
    exclude = rules.exclude
    for k, v in props.items():
        t = type(v)
        if t in _SCALARS:
            if k not in exclude and k not in _MONEY_TAGS:
                out[k] = v
        elif v is None or k in exclude or k in _MONEY_TAGS:
            continue
        elif t is list:
            if rules.lists == "count":
                out[f"{k}_count"] = len(v)
        elif t is dict and rules.objects == "flatten":
            for k2, v2 in v.items():
                if type(v2) in _SCALARS:
                    out[f"{k}.{k2}"] = v2
    return out


def build_tags(props: dict, rules: TagRules, *, revenue: int | None, value: float | None,
               currency: str | None) -> str:
    """Tags as sorted-key JSON text: scalars as they are; a list -> ``<name>_count``; an object
    flattened one level with dotted keys (or dropped, by the rules); nulls left out."""
    out = _with_money(_tag_dict(props, rules), revenue, value, currency)
    return orjson.dumps(out, option=orjson.OPT_SORT_KEYS).decode() if out else "{}"


def _with_money(tags: dict, revenue: int | None, value: float | None, currency: str | None) -> dict:
    """The mapper's own ``revenue``, ``value`` and ``currency`` tags, when set."""
    if revenue is not None:
        tags["revenue"] = revenue
    if value is not None:
        tags["value"] = value
    if currency:
        tags["currency"] = currency
    return tags


def parse_objects(texts: Sequence[str | None]) -> tuple[list[dict], list[int]]:
    """Each properties JSON text as a dict (``{}`` for null/empty); texts that are not a JSON
    object also give ``{}`` and their positions are the second value."""
    loads = orjson.loads
    try:
        out = [{} if t in _EMPTY else loads(t) for t in texts]
    except orjson.JSONDecodeError:
        out = []
        for t in texts:
            try:
                out.append({} if t in _EMPTY else loads(t))
            except orjson.JSONDecodeError:
                out.append(None)
    bad = [i for i, d in enumerate(out) if type(d) is not dict]
    for i in bad:
        out[i] = {}
    return out, bad


def conversion_tags(texts: Sequence[str | None], revenues: Sequence[int | None], values: Sequence[float | None],
                    currencies: Sequence[str | None], rules: TagRules) -> tuple[pa.LargeStringArray, int]:
    """:func:`build_tags` for a column of properties texts (aligned with the revenue, value and
    currency columns); returns the tags as an Arrow string array and how many properties were not
    a JSON object.

    One pass per row: parse, drop or flatten, serialize into one growing buffer. A text with no
    ``[``, no second ``{`` and no ``null`` is a flat object of scalars (a string holding one of those
    only sends its row the general way): only the money names are dropped, without looking at each
    value (~30% of this loop when it did). Keeping a bytes
    object per row instead (what ``[orjson.dumps(...) for ...]`` does) costs several times more,
    almost all of it in the kernel: each result is a fresh allocation of orjson's output buffer.
    """
    exclude = rules.exclude
    loads, dumps, sort = orjson.loads, orjson.dumps, orjson.OPT_SORT_KEYS
    buf = bytearray()
    ends = [0]
    end = ends.append
    bad = 0
    for t, r, v, c in zip(texts, revenues, values, currencies, strict=True):
        if not t or t == "{}":
            p: dict = {}
        else:
            try:
                p = loads(t)
            except orjson.JSONDecodeError:
                p = None  # type: ignore[assignment]
            if type(p) is not dict:
                bad += 1
                p = {}
            elif exclude or "[" in t or "null" in t or t.find("{", 1) >= 0:  # maybe a list, an object or a null
                p = _tag_dict(p, rules)
            else:  # all scalars (the common case): only the names that are never passed through go
                p.pop("revenue", None)
                p.pop("value", None)
                p.pop("currency", None)
        if r is not None:  # _with_money, inline: a call per row costs ~15% of this loop
            p["revenue"] = r
        if v is not None:
            p["value"] = v
        if c:
            p["currency"] = c
        buf += dumps(p, option=sort) if p else b"{}"
        end(len(buf))
    offsets = np.array(ends, dtype=np.int64)
    return pa.LargeStringArray.from_buffers(len(texts), pa.py_buffer(offsets), pa.py_buffer(bytes(buf))), bad


def conversion_tags_column(texts: pa.Array, revenues: Sequence[int | None], values: Sequence[float | None],
                           currencies: pa.Array, rules: TagRules, *,
                           canonical: bool = False) -> tuple[pa.LargeStringArray, int]:
    """:func:`conversion_tags` for Arrow columns of texts and currencies (aligned with the lists of
    revenues and values). With ``canonical`` (every text is ``orjson.dumps(object,
    option=OPT_SORT_KEYS)``, what the loader writes), a row whose tags are its properties as they
    are keeps its text, found by Arrow's regular-expression kernel with no Python per row: a flat object
    with no ``revenue`` or ``value`` name and no revenue or value to add, whose ``currency`` is the
    currency tag already (or which has neither). Add-to-cart, checkout and form events are mostly
    such rows. The others go through :func:`conversion_tags`; the result is the same text."""
    texts = texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts
    texts = texts.cast(pa.large_string())
    n = len(texts)
    same = _as_they_are(texts, revenues, values, currencies) if canonical and n and not rules.exclude else None
    if same is None or not same.any():
        return conversion_tags(texts.to_pylist(), revenues, values, currencies.to_pylist(), rules)
    rest = np.flatnonzero(~same)
    take = pa.array(rest)
    got, bad = conversion_tags(texts.take(take).to_pylist(), [revenues[i] for i in rest.tolist()],
                               [values[i] for i in rest.tolist()], currencies.take(take).to_pylist(), rules)
    return pc.replace_with_mask(texts, pa.array(~same), got), bad


_NOT_AS_THEY_ARE = r'\[|null|"revenue":|"value":|.\{'  # a list, a null, a money name, an object inside


def _matches(texts: pa.Array, pattern: str) -> np.ndarray:
    return pc.fill_null(pc.match_substring_regex(texts, pattern), False).to_numpy(zero_copy_only=False)


def _as_they_are(texts: pa.Array, revenues: Sequence[int | None], values: Sequence[float | None],
                 currencies: pa.Array) -> np.ndarray:
    """Rows of canonical texts whose tags are the text itself (see :func:`conversion_tags_column`).

    In orjson's compact output every quote inside a string is escaped, so ``{"`` and ``,"`` only
    start a name and a pattern with bare quotes only matches the structure; a string that merely
    holds ``[``, ``{`` or ``null`` sends its row the general way, never the wrong way. One regular
    expression pass (RE2) finds the rows that cannot be as they are: Arrow's substring search
    scans a whole text for each absent pattern, the expression scans it once for all of them."""
    n = len(texts)
    ok = pc.is_valid(texts).to_numpy(zero_copy_only=False)
    ok &= np.fromiter(map(is_, revenues, repeat(None)), dtype=bool, count=n)
    ok &= np.fromiter(map(is_, values, repeat(None)), dtype=bool, count=n)
    ok &= ~_matches(texts, _NOT_AS_THEY_ARE)
    tagged = pc.is_valid(currencies).to_numpy(zero_copy_only=False)
    untagged = np.flatnonzero(ok & ~tagged)  # no currency tag: no currency name either
    if len(untagged):
        ok[untagged] = ~_matches(texts.take(pa.array(untagged)), '"currency":')
    rows = np.flatnonzero(ok & tagged)  # a currency tag: the currency name holds exactly that code
    if len(rows):
        enc = pc.dictionary_encode(currencies.take(pa.array(rows)))
        codes = enc.indices.to_numpy(zero_copy_only=False)
        sub = texts.take(pa.array(rows))
        hit = np.zeros(len(rows), dtype=bool)
        for k, code in enumerate(enc.dictionary.to_pylist()):  # a few currencies: one pass each
            at = np.flatnonzero(codes == k)
            pair = re.escape('"currency":' + orjson.dumps(code).decode())
            try:
                hit[at] = _matches(sub.take(pa.array(at)), "[{,]" + pair + "[,}]")
            except pa.ArrowInvalid:  # a code RE2 will not take as a literal: its rows go the general way
                continue
        ok[rows] = hit
    return ok
