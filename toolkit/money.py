"""Money in the lowest currency unit, the way the Event API wants revenue (an integer).

The exponent of each currency (JPY 0, GBP 2, KWD 3, ...) comes from the ISO 4217 table shipped by
the maintained ``iso4217`` package; codes the table has no exponent for (gold, SDR, test codes)
are unknown currencies. Conversion is decimal-exact: the raw text is parsed as a
:class:`~decimal.Decimal`, scaled by ``10 ** exponent``, and must then be a whole number.

Rule for too many decimals: ``12.345 GBP`` is *rejected* as invalid revenue (the detail names
the value and the currency's exponent), never rounded: a silent rounding would hide a currency
or unit mix-up in the source (a KWD amount labelled GBP, a price in cents labelled as units).
Trailing zeros are fine (``19.990 GBP`` -> 1999).

``to_minor_units`` raises :class:`MoneyError` (``reason`` is a :class:`~toolkit.contracts.Reason`);
``minor_units`` is the vectorized form used by the mapper and never raises.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from functools import cache

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .contracts import Reason

__all__ = ["MoneyError", "currency_exponent", "normalize_currency", "to_minor_units", "minor_units"]


_MAX_MINOR = 2**63 - 1


class MoneyError(ValueError):
    """A revenue value or currency that cannot become minor units; ``reason`` is the quarantine code."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@cache
def _exponents() -> dict[str, int]:
    from iso4217 import Currency

    return {c.code: int(c.exponent) for c in Currency if c.exponent is not None}


def normalize_currency(code: str) -> str:
    """``" gbp "`` -> ``"GBP"`` (codes are compared upper-case, surrounding blanks ignored)."""
    return code.strip().upper()


def currency_exponent(code: str) -> int | None:
    """The ISO 4217 minor-unit exponent of a currency code, or None if the code is unknown."""
    return _exponents().get(normalize_currency(code))


def to_minor_units(raw: str | int | float | Decimal, currency: str, *, allow_negative: bool = False,
                   already_minor: bool = False) -> int:
    """``"89.99", "GBP"`` -> 8999; ``"1200", "JPY"`` -> 1200; ``"12.345", "KWD"`` -> 12345.

    Floats are taken by their shortest repr (19.99 -> "19.99"), never by their binary value.
    Raises :class:`MoneyError` with ``invalid_revenue`` (not a finite number, negative, more
    decimals than the currency has) or ``unknown_currency``. ``already_minor``: the export's amounts
    are already in the lowest unit (cents), so they are taken as they are and must be whole.
    """
    exp = currency_exponent(currency) if isinstance(currency, str) else None
    if exp is None:
        raise MoneyError(Reason.UNKNOWN_CURRENCY, f"currency {currency!r} is not an ISO 4217 code with minor units")
    if already_minor:
        exp = 0
    if isinstance(raw, bool):
        raise MoneyError(Reason.INVALID_REVENUE, f"revenue {raw!r} is a boolean, not an amount")
    text = repr(raw) if isinstance(raw, float) else str(raw).strip()
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise MoneyError(Reason.INVALID_REVENUE, f"revenue {text!r} is not a number") from None
    if not amount.is_finite():
        raise MoneyError(Reason.INVALID_REVENUE, f"revenue {text!r} is not a finite number")
    if amount < 0 and not allow_negative:
        raise MoneyError(Reason.INVALID_REVENUE,
                         f"revenue {text!r} is negative (refunds are off: set allow_refunds in the blueprint)")
    if amount.adjusted() > 18:  # E3 stores revenue as a signed 64-bit long
        raise MoneyError(Reason.INVALID_REVENUE, f"revenue {text!r} is too large for a 64-bit amount")
    scaled = amount.scaleb(exp)
    if scaled != scaled.to_integral_value():
        raise MoneyError(Reason.INVALID_REVENUE,
                         f"revenue {text!r} has more decimals than {normalize_currency(currency)} "
                         f"allows ({exp}); not rounded")
    if abs(scaled) > _MAX_MINOR:
        raise MoneyError(Reason.INVALID_REVENUE, f"revenue {text!r} is too large for a 64-bit amount")
    return int(scaled)


def minor_units(
    raw: pd.Series, currency: pd.Series, *, allow_negative: bool = False, already_minor: bool = False
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Vectorized :func:`to_minor_units` over aligned Series of raw text and currency codes.

    Returns ``(minor: Int64, reason: string, detail: string)``; rows where ``raw`` is null get
    null in all three; a failed row has null ``minor`` and its reason/detail set.

    The common forms (plain digits with at most three decimals, a known currency) are converted
    with Arrow string kernels and int64 arithmetic, which is exact: ``"19.99"`` becomes the digits
    ``1999`` and the count of decimals 2, then is scaled by ``10 ** (exponent - decimals)``
    (trailing zeros beyond the exponent divide out exactly, else the row is left to the scalar
    path). Everything else (exponents, signs, blanks, too many decimals, unknown currencies) goes
    through :func:`to_minor_units`, once per distinct (raw, currency) pair, for its exact
    result or its reason and detail.
    """
    idx = raw.index
    n = len(raw)
    minor = np.zeros(n, dtype=np.int64)
    done = np.zeros(n, dtype=bool)
    text = pa.array(raw.astype("string"))
    if n:
        exp = _row_exponents(currency)
        if already_minor:
            exp = np.where(exp >= 0, 0, exp)
        fast = pc.fill_null(pc.match_substring_regex(text, _FAST_AMOUNT), False).to_numpy(zero_copy_only=False)
        fast &= exp >= 0
        if fast.any():
            dot = pc.fill_null(pc.find_substring(text, "."), -1).to_numpy(zero_copy_only=False)
            length = pc.fill_null(pc.utf8_length(text), 0).to_numpy(zero_copy_only=False)
            digits_text = pc.if_else(pa.array(fast), pc.replace_substring(text, ".", ""), None)
            digits = pc.fill_null(pc.cast(digits_text, pa.int64()), 0).to_numpy(zero_copy_only=False)
            decimals = np.where(dot < 0, 0, length - dot - 1)
            shift = np.where(fast, exp - decimals, 0)
            up = fast & (shift >= 0)
            minor[up] = digits[up] * _POW10[shift[up]]
            down = fast & (shift < 0)
            if down.any():  # more decimals than the currency has: exact only if they are zeros
                div = _POW10[-shift[down]]
                exact = digits[down] % div == 0
                rows = np.flatnonzero(down)[exact]
                minor[rows] = digits[rows] // div[exact]
                up[rows] = True
            done = up
    valid = pc.is_valid(text).to_numpy(zero_copy_only=False) if n else np.zeros(0, dtype=bool)
    reasons = np.full(n, None, dtype=object)
    details = np.full(n, None, dtype=object)
    slow = np.flatnonzero(valid & ~done)
    if len(slow):
        raws = text.take(pa.array(slow)).to_pylist()
        curs = currency.iloc[slow].astype(object).where(currency.iloc[slow].notna(), None).tolist()
        cache: dict[tuple, tuple[int | None, str | None, str | None]] = {}
        for pos, pair in zip(slow.tolist(), zip(raws, curs, strict=True), strict=True):
            res = cache.get(pair)
            if res is None:
                try:
                    res = (to_minor_units(pair[0], pair[1], allow_negative=allow_negative,
                                          already_minor=already_minor), None, None)
                except MoneyError as exc:
                    res = (None, exc.reason.value, exc.detail)
                cache[pair] = res
            if res[0] is not None:
                minor[pos] = res[0]
                done[pos] = True
            else:
                reasons[pos], details[pos] = res[1], res[2]
    return (pd.Series(pd.arrays.IntegerArray(minor, ~done), index=idx),
            pd.Series(reasons, index=idx, dtype="string"), pd.Series(details, index=idx, dtype="string"))


# plain digits (at most 14 before the point, 1-3 after): with any ISO exponent (<= 4) the scaled
# value stays under 10**18, inside int64
_FAST_AMOUNT = r"^[0-9]{1,14}(\.[0-9]{1,3})?$"
_POW10 = 10 ** np.arange(19, dtype=np.int64)


def _row_exponents(currency: pd.Series) -> np.ndarray:
    """The exponent of each row's currency, -1 when null or unknown (computed per distinct code)."""
    codes, uniques = pd.factorize(currency.astype("string"), use_na_sentinel=True)
    exps = np.array([e if (e := currency_exponent(c)) is not None else -1 for c in uniques.tolist()] + [-1],
                    dtype=np.int64)
    return exps[codes]
