"""Bodies built by the official optimizely-sdk (EventFactory) and by the toolkit's payload builder."""

from __future__ import annotations

import json

import pandas as pd
import requests
from optimizely.event.event_factory import EventFactory
from optimizely.event.user_event_factory import UserEventFactory
from optimizely.logger import NoOpLogger

from toolkit.contracts import EVENTS, conform
from toolkit.datafile import load_datafile

from .bodies import CONTROL, T0, TREATMENT, metric_table, post
from .conftest import FIXTURE_DATAFILE


def _sdk_body(pc, user: str, variation: str, t: int, conversions: list[tuple[str, dict | None, int]]) -> dict:
    """impression + conversions for one user, built by the SDK; timestamps set after (ms from T0)."""
    exp = pc.get_experiment_from_key("checkout_flow")
    imp = UserEventFactory.create_impression_event(
        pc, exp, variation, "new_checkout", "checkout_flow", "feature-test", True, user, {"country": "GB"}, None)
    convs = [UserEventFactory.create_conversion_event(pc, key, user, {"country": "GB"}, tags) for key, tags, _ in conversions]
    log_event = EventFactory.create_log_event([imp, *convs], NoOpLogger())
    params = log_event.params
    snaps = [s for v in params["visitors"] for s in v["snapshots"]]
    for snap, at in zip(snaps, [t, *(c[2] for c in conversions)], strict=True):
        snap["events"][0]["timestamp"] = T0 + at
    return params


def test_official_sdk_bodies_are_accepted_and_counted(sandbox):
    pc = load_datafile(FIXTURE_DATAFILE).project_config()
    bodies = [
        _sdk_body(pc, "alice", CONTROL, 0, [("purchase", {"revenue": 4200, "currency": "EUR"}, 10),
                                            ("add_to_cart", None, 5)]),
        _sdk_body(pc, "bob", TREATMENT, 100, [("purchase", {"revenue": 1999}, 50),  # before the decision
                                              ("purchase", {"revenue": 500, "value": 2.5}, 200)]),
        _sdk_body(pc, "carol", TREATMENT, 0, [("purchase", {"revenue": 89.99}, 10)]),  # SDK drops the float revenue
    ]
    for b in bodies:
        assert b["visitors"][0]["snapshots"][0]["decisions"][0]["metadata"]["rule_type"] == "feature-test"
        r = requests.post(sandbox.events_url, data=json.dumps(b), headers={"Content-Type": "application/json",
                                                                            "X-Optimizely-Strict": "true"}, timeout=30)
        assert r.status_code == 204, r.text
    s = sandbox.stats()
    assert s["events_stored"] == 8 and s["silently_dropped"] == 0
    table = metric_table(requests.get(sandbox.results_url("50001"), timeout=30).json())
    assert table[(CONTROL, "purchase")] == (1, 1, 4200)
    assert table[(CONTROL, "add_to_cart")] == (1, 1, 0)
    assert table[(TREATMENT, "purchase")] == (2, 2, 500)  # bob's later purchase, carol's (no revenue)


def _events_frame() -> pd.DataFrame:
    rows = [
        {"kind": "impression", "uuid": "i-1", "visitor_id": "dana", "timestamp": T0, "key": "campaign_activated",
         "entity_id": "60001", "campaign_id": "60001", "experiment_id": "50001", "variation_id": TREATMENT,
         "flag_key": "new_checkout", "rule_key": "checkout_flow", "rule_type": "feature-test",
         "variation_key": "checkout_new", "enabled": True, "tags": "{}"},
        {"kind": "conversion", "uuid": "c-1", "visitor_id": "dana", "timestamp": T0 + 5, "key": "purchase",
         "entity_id": "40001", "revenue": 2342, "tags": json.dumps({"revenue": 2342, "currency": "USD"})},
        {"kind": "conversion", "uuid": "c-2", "visitor_id": "erin", "timestamp": T0 + 5, "key": "purchase",
         "entity_id": "40001", "revenue": 100, "tags": json.dumps({"revenue": 100})},
        {"kind": "impression", "uuid": "i-2", "visitor_id": "erin", "timestamp": T0 + 9, "key": "campaign_activated",
         "entity_id": "60001", "campaign_id": "60001", "experiment_id": "50001", "variation_id": CONTROL,
         "tags": "{}"},
    ]
    return conform(pd.DataFrame(rows), EVENTS)


def test_toolkit_payload_bodies_are_accepted_and_counted(sandbox):
    from toolkit.payload import iter_bodies

    df = load_datafile(FIXTURE_DATAFILE)
    bodies = list(iter_bodies(_events_frame(), account_id=df.account_id, project_id=df.project_id,
                              revision=df.revision, anonymize_ip=df.anonymize_ip, max_bytes=600))
    assert len(bodies) >= 2  # split by the small cap: several requests
    for b in bodies:
        assert post(sandbox.events_url, b.data, strict=True).status_code == 204
        assert post(sandbox.events_url, b.data).status_code == 204  # a resend is deduplicated
    s = sandbox.stats()
    assert (s["events_stored"], s["duplicates"]) == (4, 4)
    table = metric_table(requests.get(sandbox.results_url("50001"), timeout=30).json())
    assert table[(TREATMENT, "purchase")] == (1, 1, 2342)
    assert table[(CONTROL, "purchase")] == (0, 0, 0)  # erin bought before her decision
