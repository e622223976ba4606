from decimal import Decimal

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from toolkit.contracts import Reason
from toolkit.money import MoneyError, currency_exponent, minor_units, to_minor_units


@pytest.mark.parametrize(("raw", "currency", "expected"), [
    ("89.99", "GBP", 8999),
    (89.99, "GBP", 8999),
    ("19.99", "USD", 1999),
    (19.99, "USD", 1999),  # never 1998 (the Math.floor(x*100) bug of peer integrations)
    ("1200", "JPY", 1200),
    (1200, "JPY", 1200),
    ("12.345", "KWD", 12345),
    ("19.990", "GBP", 1999),  # trailing zeros are not extra precision
    (" 5 ", "eur", 500),  # blanks and lower-case codes are tolerated
    ("1e2", "USD", 10000),
    ("0", "USD", 0),
])
def test_revenue_table(raw, currency, expected):
    assert to_minor_units(raw, currency) == expected


def test_exponents_come_from_iso4217():
    assert (currency_exponent("JPY"), currency_exponent("GBP"), currency_exponent("KWD")) == (0, 2, 3)
    assert currency_exponent("XAU") is None  # gold has no minor unit: not a revenue currency
    assert currency_exponent("ABC") is None


@pytest.mark.parametrize(("raw", "currency", "reason", "in_detail"), [
    ("12.345", "GBP", Reason.INVALID_REVENUE, "more decimals than GBP allows (2)"),
    ("1.5", "JPY", Reason.INVALID_REVENUE, "more decimals than JPY allows (0)"),
    ("abc", "GBP", Reason.INVALID_REVENUE, "'abc' is not a number"),
    ("1,234.50", "USD", Reason.INVALID_REVENUE, "is not a number"),
    ("NaN", "USD", Reason.INVALID_REVENUE, "not a finite number"),
    ("-Infinity", "USD", Reason.INVALID_REVENUE, "not a finite number"),
    (float("inf"), "USD", Reason.INVALID_REVENUE, "not a finite number"),
    ("-10.00", "USD", Reason.INVALID_REVENUE, "negative"),
    (True, "USD", Reason.INVALID_REVENUE, "boolean"),
    ("1e30", "USD", Reason.INVALID_REVENUE, "too large"),
    ("10", "ZZZ", Reason.UNKNOWN_CURRENCY, "'ZZZ'"),
    ("10", "XAU", Reason.UNKNOWN_CURRENCY, "'XAU'"),
])
def test_rejections_carry_reason_and_raw_value(raw, currency, reason, in_detail):
    with pytest.raises(MoneyError) as exc:
        to_minor_units(raw, currency)
    assert exc.value.reason is reason
    assert in_detail in exc.value.detail


def test_refunds_only_when_allowed():
    assert to_minor_units("-10.50", "USD", allow_negative=True) == -1050


def test_vectorized_form_matches_scalar_and_keeps_index():
    raw = pd.Series(["89.99", None, "x", "12.345", "3"], index=[10, 11, 12, 13, 14], dtype="string")
    cur = pd.Series(["GBP", "GBP", "GBP", "GBP", "QQQ"], index=raw.index, dtype="string")
    minor, reason, detail = minor_units(raw, cur)
    assert minor.dtype == "Int64" and list(minor.index) == [10, 11, 12, 13, 14]
    assert minor.tolist() == [8999, pd.NA, pd.NA, pd.NA, pd.NA]
    assert reason.tolist() == [pd.NA, pd.NA, "invalid_revenue", "invalid_revenue", "unknown_currency"]
    assert detail.notna().tolist() == [False, False, True, True, True]


_CURRENCIES = st.sampled_from(["JPY", "GBP", "USD", "KWD", "BHD", "EUR", "CLP", "ISK", "TND"])


@given(currency=_CURRENCIES, units=st.integers(min_value=0, max_value=10**15), as_text=st.booleans())
def test_any_decimal_with_the_currency_exponent_round_trips(currency, units, as_text):
    exp = currency_exponent(currency)
    amount = Decimal(units).scaleb(-exp)  # exactly `exp` decimals, e.g. 1999 -> 19.99
    raw = str(amount) if as_text else format(amount, "f")
    assert to_minor_units(raw, currency) == units


@given(currency=_CURRENCIES, units=st.integers(min_value=0, max_value=10**12))
def test_float_inputs_use_their_shortest_repr(currency, units):
    # up to 15 significant digits a float's shortest repr is the decimal it was written as
    as_float = float(Decimal(units).scaleb(-currency_exponent(currency)))
    assert to_minor_units(as_float, currency) == units


@given(currency=_CURRENCIES, units=st.integers(min_value=1, max_value=10**9), extra=st.integers(1, 9))
def test_one_more_decimal_than_allowed_is_rejected_not_rounded(currency, units, extra):
    exp = currency_exponent(currency)
    amount = Decimal(units).scaleb(-exp) + Decimal(extra).scaleb(-exp - 1)
    with pytest.raises(MoneyError) as exc:
        to_minor_units(str(amount), currency)
    assert exc.value.reason is Reason.INVALID_REVENUE


_AMOUNT_TEXT = st.from_regex(r"[+-]?[0-9]{0,16}(\.[0-9]{0,5})?([eE][+-]?[0-9])?", fullmatch=True) | st.text(max_size=5)


@given(pairs=st.lists(st.tuples(st.none() | _AMOUNT_TEXT, st.none() | _CURRENCIES | st.sampled_from(["CLF", "xxx", ""])),
                      max_size=25),
       allow_negative=st.booleans())
def test_vectorized_fast_path_agrees_with_the_scalar_form(pairs, allow_negative):
    """The Arrow/int64 fast path of ``minor_units`` gives exactly what ``to_minor_units`` gives."""
    raw = pd.Series([r for r, _ in pairs], dtype="string")
    cur = pd.Series([c for _, c in pairs], dtype="string")
    minor, reason, detail = minor_units(raw, cur, allow_negative=allow_negative)
    for (r, c), m, why, text in zip(pairs, minor, reason, detail, strict=True):
        if r is None:
            assert m is pd.NA and why is pd.NA and text is pd.NA
            continue
        try:
            expected = to_minor_units(r, c, allow_negative=allow_negative)
        except MoneyError as exc:
            assert (m, why, text) == (pd.NA, exc.reason.value, exc.detail)
        else:
            assert (m, why, text) == (expected, pd.NA, pd.NA)


def test_amounts_already_in_minor_units():
    assert to_minor_units("8999", "GBP", already_minor=True) == 8999
    assert to_minor_units("1200", "JPY", already_minor=True) == 1200
    with pytest.raises(MoneyError) as err:
        to_minor_units("89.99", "GBP", already_minor=True)
    assert err.value.reason.value == "invalid_revenue"
    raw = pd.Series(["8999", "89.99", "12345", None], dtype="string")
    cur = pd.Series(["GBP", "GBP", "KWD", "USD"], dtype="string")
    minor, reason, _ = minor_units(raw, cur, already_minor=True)
    assert minor.tolist() == [8999, pd.NA, 12345, pd.NA]
    assert reason.tolist() == [pd.NA, "invalid_revenue", pd.NA, pd.NA]
