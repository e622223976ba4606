"""Offline bucketing: the decisions the official ``optimizely-sdk`` would make, as impressions.

For every visitor who converts on an event key attached (datafile ``events[].experimentIds``) to a
running experiment, ask the SDK which variation it assigns: the steps of its own
``DecisionService.get_variation`` (project config from the datafile, no user profile service),
each one the SDK's function, in the SDK's order, with the SDK's hashing: experiment running, forced variations (whitelist), audiences (evaluated with the
attributes given for the visitor; without attributes an audience with conditions fails, as in the
SDK), ``$opt_bucketing_id``, mutually exclusive groups (random policy) and traffic allocation with
the SDK's MurmurHash3. Nothing of that is re-implemented here.

What this cannot know, and why every row it makes is labelled ``synthesized=True``: the live SDK's
user profiles (sticky bucketing), forced decisions set in code, attributes the export does not
hold, and CMAB experiments (decided by a remote service; skipped here).

Each decision becomes one impression row in the EVENTS contract: key ``campaign_activated``,
``entity_id`` = campaign id (layerId), timestamp 1 ms before the visitor's first event in the
input, ``uuid`` = UUIDv5 of (visitor_id, experiment_id) in :data:`IMPRESSION_NAMESPACE` (stable:
the same visitor and experiment always give the same uuid, so a replay is deduplicated).
Visitors the SDK puts in no variation (outside traffic allocation, audience not met, other
experiment of their group) get no row.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

import pandas as pd

from .activations import decision_enabled
from .contracts import CAMPAIGN_ACTIVATED, EVENTS, conform, empty
from .datafile import Datafile

__all__ = ["bucket_impressions", "bucket_value", "impression_uuid", "IMPRESSION_NAMESPACE"]

log = logging.getLogger(__name__)

# Fixed namespace of synthesized impression uuids (never change it: replays dedup on the uuid).
IMPRESSION_NAMESPACE = uuid.UUID("6b1f3c52-6f0e-5a7d-9a43-5d1c2f0b8e41")


def impression_uuid(visitor_id: str, experiment_id: str) -> str:
    """Stable uuid of the synthesized impression of ``visitor_id`` in ``experiment_id``."""
    return str(uuid.uuid5(IMPRESSION_NAMESPACE, f"{visitor_id}\x1f{experiment_id}"))


def bucket_value(bucketing_id: str, parent_id: str) -> int:
    """The SDK's bucket (0..9999) of ``bucketing_id`` in an experiment or group: its own hash."""
    from optimizely.bucketer import Bucketer

    return Bucketer()._generate_bucket_value(f"{bucketing_id}{parent_id}")


class _SdkDecider:
    """The SDK's ``DecisionService.get_variation`` steps, in its order, over one project config.

    Each step is the SDK's own function: experiment running, whitelist (forcedVariations), audience
    evaluation, bucketing id, ``Bucketer.bucket`` (groups, traffic allocation, MurmurHash3). With no
    user profile service and no forced variations set in code, ``get_variation`` reduces to exactly
    these steps (tests hold this against ``Optimizely.get_variation`` and ``decide``). The only
    addition is a cache of the audience verdict per (experiment, attributes): it depends on nothing
    else offline (no ODP segments), and most visitors share the same few attribute sets.
    """

    def __init__(self, datafile: Datafile) -> None:
        from optimizely.decision_service import DecisionService
        from optimizely.logger import NoOpLogger

        self._logger = NoOpLogger()
        self._config = datafile.project_config()
        self._service = DecisionService(self._logger, None, None)  # no user profiles, no CMAB service
        self._audience: dict[tuple, bool] = {}

    def _meets_audience(self, experiment: Any, visitor_id: str, attributes: Mapping[str, Any]) -> bool:
        from optimizely.helpers import audience, enums
        from optimizely.optimizely_user_context import OptimizelyUserContext

        conditions = experiment.get_audience_conditions_or_ids()
        if not conditions:
            return True
        try:
            key: tuple | None = (experiment.id, tuple(sorted(attributes.items())))
            hash(key)
        except TypeError:  # an unhashable attribute value: evaluate without the cache
            key = None
        if key is not None and key in self._audience:
            return self._audience[key]
        user = OptimizelyUserContext(None, self._logger, visitor_id, dict(attributes), False)  # type: ignore[arg-type]
        ok, _ = audience.does_user_meet_audience_conditions(
            self._config, conditions, enums.ExperimentAudienceEvaluationLogs, experiment.key, user, self._logger)
        if key is not None:
            self._audience[key] = ok
        return ok

    def variation_id(self, visitor_id: str, experiment_id: str, attributes: Mapping[str, Any]) -> str | None:
        from optimizely.helpers import experiment as experiment_helper

        experiment = self._config.get_experiment_from_id(experiment_id)
        if experiment is None or experiment.cmab or not experiment_helper.is_experiment_running(experiment):
            return None
        variation, _ = self._service.get_whitelisted_variation(self._config, experiment, visitor_id)
        if variation is None:
            if not self._meets_audience(experiment, visitor_id, attributes):
                return None
            bucketing_id, _ = self._service._get_bucketing_id(visitor_id, attributes)  # type: ignore[arg-type]
            variation, _ = self._service.bucketer.bucket(self._config, experiment, visitor_id, bucketing_id)
        if variation is None:
            return None
        return str(variation["id"] if isinstance(variation, dict) else variation.id)


def _candidate_pairs(events: pd.DataFrame, datafile: Datafile) -> pd.DataFrame:
    """(visitor_id, experiment_id, first_ts): visitors converting on a key of a running experiment."""
    running = {e.id for e in datafile.running_experiments()}
    key_exp = pd.DataFrame(
        [(k, x) for k, ev in datafile.events.items() for x in ev.experiment_ids if x in running],
        columns=["key", "experiment_id"],
    ).astype("string")
    rows = events[events["visitor_id"].notna() & events["timestamp"].notna()]
    first_ts = rows.groupby("visitor_id", sort=False)["timestamp"].min().rename("first_ts")
    conv = rows.loc[rows["kind"] == "conversion", ["visitor_id", "key"]].drop_duplicates()
    pairs = conv.merge(key_exp, on="key", how="inner")[["visitor_id", "experiment_id"]].drop_duplicates()
    pairs = pairs.merge(first_ts, left_on="visitor_id", right_index=True, how="left")
    return pairs.sort_values(["first_ts", "visitor_id", "experiment_id"], kind="stable").reset_index(drop=True)


def _variation_meta(datafile: Datafile) -> pd.DataFrame:
    """Impression metadata per (experiment_id, variation_id), as the SDK fills it in (``enabled``:
    true for plain experiments, the variation's featureEnabled for flag rules, rollouts included)."""
    rows = []
    for exp in datafile.experiments.values():
        for var in exp.variations:
            rows.append((exp.id, var.id, exp.campaign_id, exp.flag_key, exp.key, exp.rule_type, var.key,
                         decision_enabled(exp, var)))
    meta = pd.DataFrame(rows, columns=["experiment_id", "variation_id", "campaign_id", "flag_key", "rule_key",
                                       "rule_type", "variation_key", "enabled"])
    return meta.astype({c: "string" for c in meta.columns if c != "enabled"} | {"enabled": "boolean"})


def _impression_rows(pairs: pd.DataFrame, datafile: Datafile) -> pd.DataFrame:
    if pairs.empty:
        return empty(EVENTS)
    out = pairs.merge(_variation_meta(datafile), on=["experiment_id", "variation_id"], how="left")
    out["kind"] = "impression"
    out["uuid"] = [impression_uuid(v, x) for v, x in zip(out["visitor_id"].tolist(), out["experiment_id"].tolist(), strict=True)]
    out["timestamp"] = out["first_ts"] - 1
    out["key"] = CAMPAIGN_ACTIVATED
    out["entity_id"] = out["campaign_id"]
    out["tags"] = "{}"
    out["synthesized"] = True
    return conform(out, EVENTS)


def bucket_impressions(
    events: pd.DataFrame,
    datafile: Datafile,
    *,
    attributes: Mapping[str, Mapping[str, Any]] | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Synthesized impressions (EVENTS rows, ``synthesized=True``) for the converting visitors.

    ``attributes`` maps visitor_id -> {attribute key: value} for audience evaluation (and
    ``$opt_bucketing_id``); visitors without an entry are evaluated with no attributes.
    The result is sorted by timestamp, visitor and experiment; the input is not modified.
    """
    from .progress import Bar

    events = conform(events, EVENTS)
    pairs = _candidate_pairs(events, datafile)
    if pairs.empty:
        return empty(EVENTS)
    decider = _SdkDecider(datafile)
    attrs = attributes or {}
    no_attrs: dict[str, Any] = {}
    assigned: list[str | None] = []
    for visitor_id, experiment_id in Bar(
        zip(pairs["visitor_id"].tolist(), pairs["experiment_id"].tolist(), strict=True),
        total=len(pairs), desc="bucketing (optimizely-sdk)", unit="decision", disable=not progress,
    ):
        assigned.append(decider.variation_id(visitor_id, experiment_id, attrs.get(visitor_id, no_attrs)))
    pairs = pairs.assign(variation_id=pd.array(assigned, dtype="string"))
    bucketed = pairs[pairs["variation_id"].notna()]
    log.info(
        "offline bucketing (synthesized decisions): %d of %d visitor x experiment pairs in a variation, "
        "%d visitors", len(bucketed), len(pairs), bucketed["visitor_id"].nunique(),
    )
    return _impression_rows(bucketed, datafile).reset_index(drop=True)
