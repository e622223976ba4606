"""``enabled`` in impression metadata: true for plain experiments (the SDK's activate()), the
variation's featureEnabled for flag rules, rollouts included (its decide()), in both places that
make impressions: activation events (toolkit.activations) and offline bucketing (toolkit.bucketing)."""

from __future__ import annotations

import json

import pytest

from toolkit.activations import decision_enabled
from toolkit.bucketing import _variation_meta
from toolkit.datafile import load_datafile
from toolkit.mapping import map_events

from .builders import frame, row


@pytest.fixture
def flags_off(tmp_path):
    """The fixture datafile with featureEnabled false on the rollout's variation and on one
    variation of the feature test."""
    from tests.conftest import FIXTURES

    doc = json.loads((FIXTURES / "datafile.json").read_text())
    doc["rollouts"][0]["experiments"][0]["variations"][0]["featureEnabled"] = False
    for exp in doc["experiments"]:
        for var in exp["variations"]:
            if var["key"] == "checkout_control":
                var["featureEnabled"] = False
    path = tmp_path / "datafile.json"
    path.write_text(json.dumps(doc))
    return load_datafile(path)


def test_rule_types_follow_the_sdk(flags_off):
    by_key = flags_off.experiments_by_key
    rollout = next(e for e in flags_off.experiments.values() if e.rule_type == "rollout")
    assert decision_enabled(rollout, rollout.variations[0]) is False
    test = by_key["checkout_flow"]
    assert [decision_enabled(test, v) for v in test.variations] == [False, True]
    plain = by_key["pricing_page"]
    assert all(decision_enabled(plain, v) is True for v in plain.variations)


def test_bucketing_and_activations_agree(flags_off, blueprint):
    meta = _variation_meta(flags_off)
    enabled = {(r.experiment_id, r.variation_id): bool(r.enabled) for r in meta.itertuples()}
    rollout = next(e for e in flags_off.experiments.values() if e.rule_type == "rollout")
    assert enabled[(rollout.id, rollout.variations[0].id)] is False  # a rollout no longer sends true
    rows = [row("Experiment Viewed", props={"experiment_id": exp.id, "variation_id": var.id})
            for exp in flags_off.experiments.values() for var in exp.variations]
    ev = map_events(frame(rows), flags_off, blueprint).events
    assert len(ev) == len(rows)
    got = {(x, v): bool(e) for x, v, e in zip(ev["experiment_id"], ev["variation_id"], ev["enabled"], strict=True)}
    assert got == enabled
