"""The column form of the tag rules (conversion_tags) gives exactly build_tags' text, row by row."""

from __future__ import annotations

import orjson
from hypothesis import example, given
from hypothesis import strategies as st

from toolkit.blueprint import TagRules
from toolkit.tags import build_tags, conversion_tags

_KEYS = st.sampled_from(["sku", "price", "revenue", "value", "currency", "products", "shipping", "note", "a.b",
                         "products_count", "shipping.method", "q\"uote", "ü"])
_SCALAR = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False) \
    | st.text(max_size=8)
_VALUE = _SCALAR | st.lists(_SCALAR, max_size=3) | st.dictionaries(_KEYS, _SCALAR | st.lists(_SCALAR, max_size=2),
                                                                   max_size=3)
_RULES = st.builds(TagRules, lists=st.sampled_from(["count", "drop"]), objects=st.sampled_from(["flatten", "drop"]),
                   exclude=st.frozensets(_KEYS, max_size=2))
_PROPS = st.dictionaries(_KEYS, _VALUE, max_size=6) | st.dictionaries(_KEYS, _SCALAR, max_size=6)  # all scalars
_ROW = st.tuples(
    _PROPS.map(lambda d: orjson.dumps(d).decode())
    | st.sampled_from([None, "", "{}", "[1, 2]", "not json", "3"]),
    st.none() | st.integers(-10**9, 10**9),
    st.none() | st.floats(allow_nan=False, allow_infinity=False),
    st.none() | st.sampled_from(["GBP", "JPY", ""]),
)


@given(rows=st.lists(_ROW, max_size=20), rules=_RULES)
@example(rows=[('{"value":1,"revenue":2,"currency":"x","sku":"a"}', None, None, None)], rules=TagRules())
@example(rows=[('{"note":"[null{","revenue":2,"sku":"a"}', 5, None, "GBP"), ('{"a":{"b":1},"n":null}', None, 1.5, None)],
         rules=TagRules())  # text that looks nested, or is: the general rules give the same
def test_column_form_equals_build_tags(rows, rules):
    texts, revenues, values, currencies = (list(c) for c in zip(*rows, strict=True)) if rows else ([], [], [], [])
    tags, bad = conversion_tags(texts, revenues, values, currencies, rules)
    expected, expected_bad = [], 0
    for t, r, v, c in rows:
        try:
            props = orjson.loads(t) if t and t != "{}" else {}
        except orjson.JSONDecodeError:
            props = None
        if not isinstance(props, dict):
            expected_bad += 1
            props = {}
        expected.append(build_tags(props, rules, revenue=r, value=v, currency=c))
    assert tags.to_pylist() == expected
    assert bad == expected_bad


_TRICKY = st.sampled_from(['"currency":"GBP"', ',"currency":"GBP",', '{"currency":"GBP"}', "null", "[1]", "{",
                           '"revenue":', '"value":1', "GBP", "gbp", 'a"currency', "\\"])
_FLAT = st.dictionaries(_KEYS | st.sampled_from(['x"currency', "note"]), _SCALAR | _TRICKY, max_size=5)


@given(rows=st.lists(st.tuples(_FLAT | _PROPS, st.none() | st.integers(0, 10**6), st.none() | st.floats(0, 1e6),
                               st.none() | st.sampled_from(["GBP", "JPY", 'E"U', "GBP "])), max_size=25),
       rules=_RULES)
@example(rows=[({"currency": "GBP", "sku": "a"}, None, None, "GBP"), ({"sku": "b"}, None, None, None),
               ({"currency": "gbp"}, None, None, "GBP"), ({"note": ',"currency":"GBP",'}, None, None, "GBP"),
               ({'x"currency': "GBP"}, None, None, "GBP"), ({"currency": "GBP", "value": 1}, None, None, "GBP"),
               ({}, None, None, None), ({}, None, None, "GBP"), ({"currency": "GBP"}, 5, None, "GBP")],
         rules=TagRules())
def test_canonical_column_form_equals_the_row_form(rows, rules):
    """Texts as the loader writes them (orjson, sorted keys): rows kept as they are and rows that go
    the general way give exactly what conversion_tags gives for every row."""
    import pyarrow as pa

    from toolkit.tags import conversion_tags_column

    texts = [orjson.dumps(p, option=orjson.OPT_SORT_KEYS).decode() for p, *_ in rows]
    revenues, values, currencies = ([r[i] for r in rows] for i in (1, 2, 3))
    want, want_bad = conversion_tags(texts, revenues, values, currencies, rules)
    got, bad = conversion_tags_column(pa.array(texts, pa.large_string()), revenues, values,
                                      pa.array(currencies, pa.large_string()), rules, canonical=True)
    assert got.to_pylist() == want.to_pylist()
    assert bad == want_bad
