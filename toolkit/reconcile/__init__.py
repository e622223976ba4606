"""Reconciliation: what was sent and delivered (the ledger), what should count (the predictor),
what Optimizely counted (the results), and a diagnosis for every gap.

Pure functions over frames; the output writers are the only I/O.
"""

from __future__ import annotations

from ._model import CAUSES, TABLE_COLUMNS, Diagnosis, Reconciliation, Tolerance
from ._output import format_table, write_outputs
from ._run import LAG_MINUTES, delivered_events, reconcile

__all__ = [
    "reconcile",
    "Reconciliation",
    "Diagnosis",
    "Tolerance",
    "CAUSES",
    "TABLE_COLUMNS",
    "LAG_MINUTES",
    "delivered_events",
    "write_outputs",
    "format_table",
]
