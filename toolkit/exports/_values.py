"""One value at a time: JSON parsing with an exact fallback, money as text, quantities, details.

JSON is read with msgspec (integers exact however long; floats as orjson and the standard library
read them), and what it refuses by :func:`parse_json`'s fallback.

Money stays text. A JSON number with a fraction or exponent is read as a float and written back with ``repr``,
the shortest text that reads back as the same float: ``19.99`` -> ``"19.99"``, ``1200`` -> ``"1200"``,
``100.0`` -> ``"100.0"``. That is the text as written for every decimal of up to 15 significant digits
without exponent or trailing zeros; other spellings come back in their shortest form (``1e2`` ->
``"100.0"``, ``19.990`` -> ``"19.99"``), never as a rounded or truncated value. A string ``"19.99"``
is kept exactly; a Parquet decimal gives its exact text (``"19.990"``).

These are the reference behaviour; ``_props`` applies them column-wise and calls them only for
the values that need them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from decimal import Decimal
from functools import partial
from typing import Any

import msgspec
import orjson
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "NOT_JSON", "DETAIL_MAX", "clip", "parse_json", "as_dict", "dumps", "sorted_texts", "money_text",
    "quantity",
    "map_careful", "loads", "REFUSED",
]

DETAIL_MAX = 200
_DUMP_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
NOT_JSON = object()  # parse_json's answer for text that is not JSON (None is the JSON null)
_SORTED = partial(orjson.dumps, option=orjson.OPT_SORT_KEYS)  # str keys: the fast path of orjson
_MARKER = "\x00"  # written by orjson as "\u0000": the cut pattern below, between two dicts
_CUT = b',"\\u0000",'
_MAX_BLOB = 1 << 30  # Arrow binary values hold < 2 GiB


def clip(text: str, limit: int = DETAIL_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


loads = msgspec.json.Decoder().decode  # the fast path: JSON text (str or bytes) -> Python values
REFUSED = (msgspec.MsgspecError, UnicodeError)  # what loads raises for text it does not read


def parse_json(data: bytes | str) -> Any:
    """:data:`loads` first; what it refuses (numbers beyond double range, not JSON) goes to the
    standard library with decimals kept exact. Returns :data:`NOT_JSON` for text that is not JSON."""
    try:
        return loads(data)
    except REFUSED:
        return _parse_exact(data)


def _parse_exact(data: bytes | str) -> Any:
    """The standard library's reading, decimals kept exact; :data:`NOT_JSON` for text that is not JSON."""
    try:
        return json.loads(data, parse_float=Decimal, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return NOT_JSON


def _json_default(o: Any) -> Any:
    if isinstance(o, bytes):
        return o.decode("utf-8", errors="replace")
    return str(o)  # Decimal (exact text), timedelta, ...


def dumps(obj: Any) -> str:
    """Canonical JSON text: sorted keys, compact, any key or value type."""
    try:
        return orjson.dumps(obj, option=_DUMP_OPTS, default=_json_default).decode()
    except TypeError:  # integers beyond 64 bits (from the fallback parser)
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def sorted_texts(dicts: list[dict], each: Callable[[Any], str | bytes] = dumps) -> tuple[pa.Array, bool]:
    """The canonical text (sorted keys, compact) of each dict, as an Arrow string array, and
    whether every text is ``orjson.dumps(d, option=OPT_SORT_KEYS)`` (False when some dict held what
    only ``each`` writes).

    One ``orjson.dumps`` of the whole list with a marker string between the dicts, cut by Arrow at
    the markers: no Python object per row (one bytes object per dict costs ~10x the serializing).
    The marker can only occur inside a dict's text as a whole (its text has no ``}``), so the cut
    is exact when it yields one piece per dict; otherwise, and for what orjson cannot write
    (non-string keys, Decimal, huge integers), each dict is written on its own by ``each``.
    """
    if not dicts:
        return pa.array([], type=pa.string()), True
    mixed: list[Any] = [_MARKER] * (2 * len(dicts) - 1)
    mixed[::2] = dicts
    try:
        blob = orjson.dumps(mixed, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return pa.array(list(map(each, dicts))).cast(pa.string()), False
    if len(blob) < _MAX_BLOB:
        pieces = pc.split_pattern(pa.array([blob[1:-1]], type=pa.binary()), pattern=_CUT).flatten()
        if len(pieces) == len(dicts):
            return pieces.view(pa.string()), True  # orjson writes valid UTF-8: no need to check it again
    return pa.array(list(map(_SORTED, dicts)), type=pa.binary()).cast(pa.string()), True


def money_text(v: Any) -> str | None:
    """A money value as text, exactly as written where the source allows (see module doc)."""
    t = type(v)
    if t is str:
        return v
    if t is float:
        return repr(v)
    if t is int:
        return str(v)
    if v is None:
        return None
    if t is bool:
        return "true" if v else "false"
    if isinstance(v, Decimal | int | float):
        return str(v)
    return dumps(v)


def quantity(v: Any) -> int | None:
    t = type(v)
    if t is int:
        return v if -(2**63) <= v < 2**63 else None
    if t is float and v.is_integer() and abs(v) < 2**63:
        return int(v)
    if t is str and v.strip().lstrip("+-").isdigit():
        try:
            return quantity(int(v))
        except ValueError:  # "+-5", "²": digits to isdigit, not to int
            return None
    return None


def as_dict(v: Any) -> dict | None:
    """A properties value -> dict, or None when it is not an object."""
    if type(v) is dict:
        return v
    if v is None:
        return {}
    if isinstance(v, str | bytes):
        try:
            parsed = loads(v)
        except REFUSED:
            if not v.strip():
                return {}
            parsed = _parse_exact(v)  # loads refused it already
        return parsed if type(parsed) is dict else None
    return None


def map_careful(fast: Callable[[Any], Any], values: Sequence[Any], careful: Callable[[Any], Any]) -> list[Any]:
    """``list(map(fast, values))`` (the loop stays in C) where a value that ``fast`` refuses with
    one of :data:`REFUSED` goes through ``careful`` instead."""
    out: list[Any] = []
    it = map(fast, values)
    while True:
        try:
            out.extend(it)  # keeps what was produced before a refused value; the map goes on after it
            return out
        except REFUSED:
            out.append(careful(values[len(out)]))
