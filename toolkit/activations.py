"""Impressions from the export: activation events (``Experiment Viewed``) -> ``campaign_activated``.

Each activation names an experiment and a variation (by id or key, from the blueprint's property
lists) which are resolved through the datafile. The impression carries what the SDK puts in a
decision: ``campaign_id`` = ``entity_id`` = the experiment's layerId (else its id), the experiment
and variation ids, and the metadata ``flag_key``, ``rule_key`` (experiment key), ``rule_type``,
``variation_key`` and ``enabled`` (:func:`decision_enabled`: ``activate()`` of a plain
experiment sends ``true``; a flag rule sends the variation's ``featureEnabled``, false when unset).

An unknown experiment -> ``unknown_experiment``; a variation not in that experiment ->
``unknown_variation`` (the detail lists the experiment's variations).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from .blueprint import Blueprint
from .contracts import Reason
from .datafile import Datafile, ExperimentInfo, VariationInfo
from .identity import derived_uuids
from .tags import parse_objects

__all__ = ["DECISION_COLUMNS", "Impressions", "map_activations", "decision_enabled"]

_IMPRESSION_COLUMNS = ("entity_id", "experiment_id", "variation_id", "flag_key", "rule_key", "rule_type",
                       "variation_key")


def decision_enabled(exp: ExperimentInfo, var: VariationInfo) -> bool:
    """The ``enabled`` metadata of an impression, as the SDK sends it: ``activate()`` of a plain
    experiment sends ``true``; ``decide()`` on a flag rule (feature test, rollout, ...) sends the
    variation's ``featureEnabled`` (false when unset)."""
    if exp.rule_type == "experiment":
        return True
    return bool(var.feature_enabled) if var.feature_enabled is not None else False


def _first_present(props: dict, names: tuple[str, ...]) -> str | None:
    for n in names:
        v = props.get(n)
        if v is not None and not isinstance(v, (dict, list, bool)) and str(v).strip():
            return str(v).strip()
    return None


@dataclass(frozen=True)
class Impressions:
    """The impressions of a chunk's activation rows, each decision column held once per distinct
    decision (activations repeat the same few experiment/variation pairs) with each impression's
    decision as a code into them: expanding a column is one take, done by whoever needs it."""

    rows: np.ndarray  # int64: each impression's row (the index of the texts)
    uuid: pa.Array  # each impression's uuid
    code: np.ndarray  # int64: each impression's decision
    decisions: dict[str, pa.Array]  # DECISION_COLUMNS -> one value per decision
    enabled: np.ndarray  # bool per decision

    def column(self, name: str) -> pa.Array:
        """A decision column, one value per impression."""
        return self.decisions[name].take(pa.array(self.code))


DECISION_COLUMNS = ("campaign_id", *_IMPRESSION_COLUMNS)


def map_activations(
    texts: pd.Series,
    uuids: pd.Series,
    datafile: Datafile,
    blueprint: Blueprint,
) -> tuple[Impressions, pd.DataFrame, dict[str, int], int]:
    """Resolve activation rows from their properties JSON texts (``uuids`` aligned with ``texts``).

    Each distinct properties text is parsed and resolved once; only the impression uuid is
    computed per row.

    Returns ``(impressions, failures, warnings, bad_properties)``: ``impressions`` carries what the
    impression columns of the EVENTS contract need (no visitor/timestamp/source columns: the mapper
    adds them) for the rows that resolved; ``failures`` has ``reason``/``detail`` for the rows that
    could not be resolved, indexed like ``texts``; ``bad_properties`` counts texts that are not a
    JSON object.
    """
    index = texts.index
    codes, uniques = pd.factorize(texts.astype("string"), use_na_sentinel=True)
    props, bad_u = parse_objects([*uniques.tolist(), None])  # the last entry stands for null texts
    codes = np.where(codes < 0, len(props) - 1, codes)
    bad_rows = int(np.isin(codes, bad_u).sum()) if bad_u else 0
    by_key = datafile.experiments_by_key
    exp_names, var_names = blueprint.activations.experiment, blueprint.activations.variation
    resolved: dict[tuple[str | None, str | None], tuple] = {}
    per_text: list[tuple] = []
    for p in props:
        refs = (_first_present(p, exp_names), _first_present(p, var_names))
        res = resolved.get(refs)
        if res is None:
            res = resolved[refs] = _resolve(*refs, datafile, by_key, exp_names, var_names)
        per_text.append(res)
    good_u = np.array([not isinstance(r[0], Reason) for r in per_text], dtype=bool)
    ok = good_u[codes]

    bad_codes = codes[~ok]
    fail = pd.DataFrame({"reason": [per_text[c][0].value for c in bad_codes.tolist()],
                         "detail": [per_text[c][1] for c in bad_codes.tolist()]},
                        index=index[~ok], dtype="string")

    ok_codes = codes[ok]
    meta: dict[str, list] = {name: [None] * len(per_text) for name in _IMPRESSION_COLUMNS}
    enabled_u = np.zeros(len(per_text), dtype=bool)
    running_u = np.ones(len(per_text), dtype=bool)
    for i, res in enumerate(per_text):
        if good_u[i]:
            exp, var = res
            for name, v in zip(_IMPRESSION_COLUMNS, (exp.campaign_id, exp.id, var.id, exp.flag_key, exp.key,
                                                     exp.rule_type, var.key), strict=True):
                meta[name][i] = v
            enabled_u[i], running_u[i] = decision_enabled(exp, var), exp.is_running
    decisions = {name: pa.array(meta[name], pa.large_string()) for name in _IMPRESSION_COLUMNS}
    decisions = {"campaign_id": decisions["entity_id"], **decisions}
    exp_ids = decisions["experiment_id"].take(pa.array(ok_codes))
    base = pa.array(uuids[ok].array)
    base = base.combine_chunks() if isinstance(base, pa.ChunkedArray) else base
    imp = Impressions(rows=np.asarray(index[ok], dtype=np.int64),
                      uuid=derived_uuids(base, exp_ids), code=ok_codes.astype(np.int64),
                      decisions=decisions, enabled=enabled_u)
    not_running = int((~running_u[ok_codes]).sum())
    warnings = {"impression_experiment_not_running": not_running} if not_running else {}
    return imp, fail, warnings, bad_rows


def _resolve(e_ref, v_ref, datafile: Datafile, by_key, exp_names, var_names):
    if e_ref is None:
        return (Reason.UNKNOWN_EXPERIMENT, f"activation without {' or '.join(exp_names)} property")
    exp = datafile.experiments.get(e_ref) or by_key.get(e_ref)
    if exp is None:
        return (Reason.UNKNOWN_EXPERIMENT,
                f"experiment {e_ref!r} is not in the datafile (revision {datafile.revision}); "
                "check the id/key, or refresh the datafile")
    if v_ref is None:
        return (Reason.UNKNOWN_VARIATION, f"activation of {exp.key} without {' or '.join(var_names)} property")
    var = exp.variation(v_ref)
    if var is None:
        known = ", ".join(f"{v.key} ({v.id})" for v in exp.variations)
        return (Reason.UNKNOWN_VARIATION, f"variation {v_ref!r} is not in experiment {exp.key}; it has {known}")
    return (exp, var)
