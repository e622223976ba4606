"""Fixtures for delivery tests: EVENTS frames, bodies built by toolkit.payload, a local Event API."""

from __future__ import annotations

import uuid

import pandas as pd
import pytest

from tests.delivery.server import EventServer
from toolkit.contracts import EVENTS, conform
from toolkit.delivery import RetryPolicy
from toolkit.payload import iter_bodies

ACCOUNT, PROJECT, REVISION = "12345678", "98765432", "42"
FAST = RetryPolicy(max_attempts=4, base=0.01, cap=0.05)


def make_events(n: int, *, visitors: int = 10, seed: int = 1) -> pd.DataFrame:
    """``n`` events over ``visitors`` visitors: one impression per visitor, conversions for the rest."""
    rows = []
    for i in range(n):
        vid = f"visitor-{i % visitors}"
        uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"test-{seed}-{i}"))
        ts = 1_700_000_000_000 + i * 1000
        if i < visitors:
            rows.append({"kind": "impression", "uuid": uid, "visitor_id": vid, "timestamp": ts,
                         "key": "campaign_activated", "entity_id": "60001", "campaign_id": "60001",
                         "experiment_id": "50001", "variation_id": "70001", "flag_key": "new_checkout",
                         "rule_key": "checkout_flow", "rule_type": "feature-test", "variation_key": "control",
                         "enabled": True, "synthesized": False, "source_event_id": f"src-{i}", "tags": "{}"})
        else:
            rows.append({"kind": "conversion", "uuid": uid, "visitor_id": vid, "timestamp": ts, "key": "purchase",
                         "entity_id": "40001", "revenue": 1000 + i, "tags": f'{{"currency":"USD","revenue":{1000 + i}}}',
                         "synthesized": False, "source_event_id": f"src-{i}"})
    return conform(pd.DataFrame(rows), EVENTS)


def make_bodies(events: pd.DataFrame, *, max_bytes: int = 2_000) -> list:
    return list(iter_bodies(events, account_id=ACCOUNT, project_id=PROJECT, revision=REVISION, max_bytes=max_bytes))


@pytest.fixture
def events() -> pd.DataFrame:
    return make_events(60)


@pytest.fixture
def bodies(events) -> list:
    out = make_bodies(events)
    assert len(out) > 5  # several bodies, so concurrency and per-body outcomes are exercised
    return out


@pytest.fixture
def server():
    with EventServer() as s:
        yield s
