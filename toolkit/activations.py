"""Impressions from the export: activation events (``Experiment Viewed``) -> ``campaign_activated``.

Each activation names an experiment and a variation (by id or key, from the blueprint's property
lists) which are resolved through the datafile. The impression carries what the SDK puts in a
decision: ``campaign_id`` = ``entity_id`` = the experiment's layerId (else its id), the experiment
and variation ids, and the metadata ``flag_key``, ``rule_key`` (experiment key), ``rule_type``,
``variation_key`` and ``enabled``. ``enabled`` follows the SDK: ``activate()`` of a plain
experiment sends ``true``; a flag rule sends the variation's ``featureEnabled`` (false when unset).

An unknown experiment -> ``unknown_experiment``; a variation not in that experiment ->
``unknown_variation`` (the detail lists the experiment's variations).
"""

from __future__ import annotations

import pandas as pd

from .blueprint import Blueprint
from .contracts import CAMPAIGN_ACTIVATED, Reason
from .datafile import Datafile, ExperimentInfo
from .identity import derived_uuid

__all__ = ["map_activations"]


def _first_present(props: dict, names: tuple[str, ...]) -> str | None:
    for n in names:
        v = props.get(n)
        if v is not None and not isinstance(v, (dict, list, bool)) and str(v).strip():
            return str(v).strip()
    return None


def _enabled(exp: ExperimentInfo, feature_enabled: bool | None) -> bool:
    if exp.rule_type == "experiment":
        return True
    return bool(feature_enabled) if feature_enabled is not None else False


def map_activations(
    props: list[dict],
    index: pd.Index,
    uuids: list[str],
    datafile: Datafile,
    blueprint: Blueprint,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """Resolve activation rows (their parsed properties, aligned with ``index`` and ``uuids``).

    Returns ``(impressions, failures, warnings)``: ``impressions`` has the impression columns of
    the EVENTS contract (no visitor/timestamp/source columns: the mapper adds them) indexed by the
    row index; ``failures`` has ``reason``/``detail`` for the rows that could not be resolved.
    """
    by_key = datafile.experiments_by_key
    resolved: dict[tuple[str | None, str | None], tuple | tuple[Reason, str]] = {}
    ok_idx, rows, bad_idx, bad = [], [], [], []
    not_running = 0
    exp_names, var_names = blueprint.activations.experiment, blueprint.activations.variation
    for i, p, u in zip(index, props, uuids, strict=True):
        e_ref, v_ref = _first_present(p, exp_names), _first_present(p, var_names)
        res = resolved.get((e_ref, v_ref))
        if res is None:
            res = _resolve(e_ref, v_ref, datafile, by_key, exp_names, var_names)
            resolved[(e_ref, v_ref)] = res
        if isinstance(res[0], Reason):
            bad_idx.append(i)
            bad.append((res[0].value, res[1]))
            continue
        exp, var = res
        not_running += not exp.is_running
        ok_idx.append(i)
        rows.append((derived_uuid(u, exp.id), exp.campaign_id, exp.id, var.id, exp.flag_key, exp.key,
                     exp.rule_type, var.key, _enabled(exp, var.feature_enabled)))
    cols = ["uuid", "entity_id", "experiment_id", "variation_id", "flag_key", "rule_key", "rule_type",
            "variation_key", "enabled"]
    imp = pd.DataFrame(rows, columns=cols, index=pd.Index(ok_idx, dtype=index.dtype))
    imp = imp.astype({c: "string" for c in cols[:-1]} | {"enabled": "boolean"})
    imp.insert(0, "kind", pd.Series("impression", index=imp.index, dtype="string"))
    imp["key"] = pd.Series(CAMPAIGN_ACTIVATED, index=imp.index, dtype="string")
    imp["campaign_id"] = imp["entity_id"]
    fail = pd.DataFrame(bad, columns=["reason", "detail"], index=pd.Index(bad_idx, dtype=index.dtype), dtype="string")
    warnings = {"impression_experiment_not_running": not_running} if not_running else {}
    return imp, fail, warnings


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
