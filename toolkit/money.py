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

import pandas as pd

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


def to_minor_units(raw: str | int | float | Decimal, currency: str, *, allow_negative: bool = False) -> int:
    """``"89.99", "GBP"`` -> 8999; ``"1200", "JPY"`` -> 1200; ``"12.345", "KWD"`` -> 12345.

    Floats are taken by their shortest repr (19.99 -> "19.99"), never by their binary value.
    Raises :class:`MoneyError` with ``invalid_revenue`` (not a finite number, negative, more
    decimals than the currency has) or ``unknown_currency``.
    """
    exp = currency_exponent(currency) if isinstance(currency, str) else None
    if exp is None:
        raise MoneyError(Reason.UNKNOWN_CURRENCY, f"currency {currency!r} is not an ISO 4217 code with minor units")
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
    raw: pd.Series, currency: pd.Series, *, allow_negative: bool = False
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Vectorized :func:`to_minor_units` over aligned Series of raw text and currency codes.

    Returns ``(minor: Int64, reason: string, detail: string)``; rows where ``raw`` is null get
    null in all three; a failed row has null ``minor`` and its reason/detail set. Each distinct
    (raw, currency) pair is converted once.
    """
    idx = raw.index
    raws = raw.astype(object).where(raw.notna(), None).tolist()
    curs = currency.astype(object).where(currency.notna(), None).tolist()
    done: dict[tuple, tuple[int | None, str | None, str | None]] = {}
    minors: list[int | None] = []
    reasons: list[str | None] = []
    details: list[str | None] = []
    for pair in zip(raws, curs, strict=True):
        res = done.get(pair)
        if res is None:
            r, c = pair
            if r is None:
                res = (None, None, None)
            else:
                try:
                    res = (to_minor_units(r, c, allow_negative=allow_negative), None, None)
                except MoneyError as exc:
                    res = (None, exc.reason.value, exc.detail)
            done[pair] = res
        minors.append(res[0])
        reasons.append(res[1])
        details.append(res[2])
    return (pd.Series(minors, index=idx, dtype="Int64"), pd.Series(reasons, index=idx, dtype="string"),
            pd.Series(details, index=idx, dtype="string"))
