"""Custom Great Expectations expectations used by the suite files. Importing this module
registers them (GX registers every Expectation subclass by its snake_case name), so it is
imported lazily, right before suites are built, never at package import (GX takes seconds).

- ``expect_column_values_to_be_iso4217_code``: each value is an ISO 4217 currency code with minor
  units, upper-case, from the same table as :mod:`toolkit.money` (the ``iso4217`` package).
- ``expect_multicolumn_values_to_be_near_group_median``: ``column_list = [value, group]``; each
  positive value lies within ``factor`` x / 1/``factor`` of the median of its group (revenue per
  currency): a value 100x the median was multiplied twice, 1/100 not at all.
"""

from __future__ import annotations

import pandas as pd
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import ColumnMapExpectation, MulticolumnMapExpectation
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnMapMetricProvider,
    MulticolumnMapMetricProvider,
    column_condition_partial,
    multicolumn_condition_partial,
)

from ..money import currency_exponent, normalize_currency

__all__ = ["ExpectColumnValuesToBeIso4217Code", "ExpectMulticolumnValuesToBeNearGroupMedian", "CUSTOM_TYPES"]

CUSTOM_TYPES = ("expect_column_values_to_be_iso4217_code", "expect_multicolumn_values_to_be_near_group_median")


def _is_iso_code(code: object) -> bool:
    return isinstance(code, str) and code == normalize_currency(code) and currency_exponent(code) is not None


class ColumnValuesIso4217Code(ColumnMapMetricProvider):
    condition_metric_name = "column_values.iso4217_code"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **kwargs) -> pd.Series:
        codes = {c: _is_iso_code(c) for c in column.dropna().unique()}  # each distinct code once
        return column.map(codes).fillna(False).astype(bool)


class ExpectColumnValuesToBeIso4217Code(ColumnMapExpectation):
    """Expect each value to be an upper-case ISO 4217 currency code that has minor units."""

    map_metric = "column_values.iso4217_code"
    success_keys = ("mostly",)


class MulticolumnValuesNearGroupMedian(MulticolumnMapMetricProvider):
    condition_metric_name = "multicolumn_values.near_group_median"
    condition_value_keys = ("factor",)

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list: pd.DataFrame, factor: float = 30.0, **kwargs) -> pd.Series:
        value = pd.to_numeric(column_list.iloc[:, 0], errors="coerce").astype("Float64")
        group = column_list.iloc[:, 1]
        positive = value.where(value > 0)
        median = positive.groupby(group, dropna=False).transform("median")
        ratio = positive / median
        ok = (ratio <= factor) & (ratio >= 1.0 / factor)
        return ok.fillna(True).astype(bool)  # zero / negative / no median: not this rule's business


class ExpectMulticolumnValuesToBeNearGroupMedian(MulticolumnMapExpectation):
    """Expect each positive value of column_list[0] within factor x of its column_list[1] group's median."""

    map_metric = "multicolumn_values.near_group_median"
    success_keys = ("mostly", "factor")
    factor: float | dict = 30.0
