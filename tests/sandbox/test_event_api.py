"""POST /v1/events: 204 / 400 / 413, strict vs silent drops, dedup, robustness."""

from __future__ import annotations

import json

import pytest
import requests

from toolkit.sandbox import MAX_BODY_BYTES

from .bodies import (
    CAMPAIGN,
    SCENARIO_EVENTS,
    body,
    conversion,
    decision,
    post,
    scenario,
    visitor,
)


def test_valid_body_is_queued_and_counted(sandbox):
    r = post(sandbox.events_url, scenario())
    assert r.status_code == 204, r.text
    s = sandbox.stats()
    assert s["events_received"] == SCENARIO_EVENTS
    assert s["events_stored"] == SCENARIO_EVENTS - 1
    assert s["duplicates"] == 1
    assert s["silently_dropped"] == 0
    assert s["decisions"] == 8 and s["conversions"] == 14
    assert s["requests"] == {"204": 1}


def _malformed():
    good = body(visitor("u", conversion("purchase", 1)))
    bad_ts = body(visitor("u", conversion("purchase", 1)))
    bad_ts["visitors"][0]["snapshots"][0]["events"][0]["timestamp"] = "2024-01-01"
    bad_entity = body(visitor("u", conversion("purchase", 1)))
    bad_entity["visitors"][0]["snapshots"][0]["events"][0]["entity_id"] = 40001
    no_visitor_id = body(visitor("u", conversion("purchase", 1)))
    del no_visitor_id["visitors"][0]["visitor_id"]
    return [
        ("not json", b"{not json", "application/json", "not_json"),
        ("empty", b"", "application/json", "not_json"),
        ("text/plain", json.dumps(good).encode(), "text/plain", "content_type"),
        ("array", b"[]", "application/json", "not_object"),
        ("no account_id", json.dumps({"visitors": []}).encode(), "application/json", "invalid_body"),
        ("no visitors", json.dumps({"account_id": "12345678"}).encode(), "application/json", "invalid_body"),
        ("visitors not array", json.dumps({"account_id": "12345678", "visitors": {}}).encode(),
         "application/json", "invalid_body"),
        ("account_id number", json.dumps({"account_id": 12345678, "visitors": []}).encode(),
         "application/json", "invalid_body"),
        ("timestamp string", json.dumps(bad_ts).encode(), "application/json", "invalid_body"),
        ("entity_id number", json.dumps(bad_entity).encode(), "application/json", "invalid_body"),
        ("no visitor_id", json.dumps(no_visitor_id).encode(), "application/json", "invalid_body"),
        ("wrong account", json.dumps(body(account_id="11111111")).encode(), "application/json", "wrong_account"),
        ("wrong project", json.dumps(body(project_id="22222222")).encode(), "application/json", "wrong_project"),
        ("deep nesting", b"[" * 100_000 + b"]" * 100_000, "application/json", "not_json"),
        ("deep tags", json.dumps(body()).encode()[:-2] + b'[{"visitor_id":"u","snapshots":[{"events":[{"tags":'
         + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"}]}]}]}", "application/json", "not_json"),
    ]


@pytest.mark.parametrize("name,data,ctype,code", _malformed(), ids=[m[0] for m in _malformed()])
def test_malformed_bodies_get_400_with_a_reason(sandbox, name, data, ctype, code):
    r = post(sandbox.events_url, data, content_type=ctype)
    assert r.status_code == 400
    answer = r.json()
    assert answer["code"] == code and answer["reason"]
    s = sandbox.stats()
    assert s["rejected"] == {code: 1} and s["events_stored"] == 0
    # still serving
    assert post(sandbox.events_url, body(visitor("u", decision(1)))).status_code == 204


def test_body_problems_are_listed_with_their_paths(sandbox):
    b = body(visitor("u", conversion("purchase", 1), conversion("purchase", 2)))
    b["visitors"][0]["snapshots"][0]["events"][0]["timestamp"] = 1.5
    b["visitors"][0]["snapshots"][1]["events"][0]["uuid"] = None
    answer = post(sandbox.events_url, b).json()
    assert answer["problems"] == [
        "visitors[0].snapshots[0].events[0].timestamp: expected an integer (epoch milliseconds), got number",
        "visitors[0].snapshots[1].events[0].uuid: missing",
    ]


def _padded(target: int) -> bytes:
    raw = json.dumps(body(visitor("u", conversion("purchase", 1)))).encode()
    return raw[:-1] + b" " * (target - len(raw)) + b"}"


def test_size_limit_is_3_5_mb(sandbox):
    at_limit = _padded(MAX_BODY_BYTES)
    assert len(at_limit) == MAX_BODY_BYTES
    assert post(sandbox.events_url, at_limit).status_code == 204
    over = _padded(MAX_BODY_BYTES + 1)
    r = post(sandbox.events_url, over)
    assert r.status_code == 413 and r.json()["code"] == "too_large"
    assert sandbox.stats()["requests"] == {"204": 1, "413": 1}


def test_over_limit_chunked_body_is_refused_without_content_length(sandbox):
    def chunks():
        yield _padded(MAX_BODY_BYTES + 10)

    r = requests.post(sandbox.events_url, data=chunks(), headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 413


def _unusable_events():
    """One usable conversion and one event for each drop reason, in that order."""
    return body(
        visitor("u1", conversion("purchase", 10, revenue=100),
                conversion("Purchase", 10, entity_id="40001"),  # keys are case-sensitive
                conversion("purchase", 10, entity_id="40002"),
                conversion("purchase", 10, revenue=89.99),
                conversion("purchase", 10, revenue="8999"),
                conversion("purchase", 10, value="7"),
                decision(5, campaign="69999", entity_id="69999"),
                decision(5, experiment="59999"),
                decision(5, variation="70003"),
                decision(5, campaign="60002", entity_id=CAMPAIGN),
                {"events": [{"entity_id": CAMPAIGN, "key": "campaign_activated", "timestamp": 5, "uuid": "x"}]}),
    )


DROPS = {"key_not_in_datafile": 1, "entity_id_mismatch": 1, "invalid_revenue": 2, "invalid_value": 1,
         "unknown_campaign": 1, "unknown_experiment": 1, "unknown_variation": 1, "campaign_mismatch": 1,
         "no_decision": 1}


def test_unusable_events_are_dropped_silently_without_strict(sandbox):
    r = post(sandbox.events_url, _unusable_events())
    assert r.status_code == 204 and r.content == b""
    s = sandbox.stats()
    assert s["silently_dropped_by_reason"] == DROPS
    assert s["events_received"] == 11 and s["events_stored"] == 1 and s["silently_dropped"] == 10
    assert s["events_received"] == s["events_stored"] + s["duplicates"] + s["silently_dropped"]


def test_strict_mode_reports_every_unusable_event_and_stores_nothing(sandbox):
    r = post(sandbox.events_url, _unusable_events(), strict=True)
    assert r.status_code == 400
    answer = r.json()
    assert answer["code"] == "strict" and answer["by_reason"] == DROPS
    assert [e["reason"] for e in answer["events"]] == [
        "key_not_in_datafile", "entity_id_mismatch", "invalid_revenue", "invalid_revenue", "invalid_value",
        "unknown_campaign", "unknown_experiment", "unknown_variation", "campaign_mismatch", "no_decision"]
    assert answer["events"][0]["path"] == "visitors[0].snapshots[1].events[0]"
    s = sandbox.stats()
    assert s["events_stored"] == 0 and s["rejected"] == {"strict": 1}
    # strict and clean: accepted
    assert post(sandbox.events_url, body(visitor("u", conversion("purchase", 1))), strict=True).status_code == 204


def test_dedup_on_entity_uuid_timestamp(sandbox):
    b = body(visitor("u", decision(1, uuid="i1"), conversion("purchase", 2, uuid="c1")))
    assert post(sandbox.events_url, b).status_code == 204
    assert post(sandbox.events_url, b).status_code == 204
    s = sandbox.stats()
    assert (s["events_received"], s["events_stored"], s["duplicates"]) == (4, 2, 2)
    # same uuid, other timestamp or other entity: a different event
    other = body(visitor("u", conversion("purchase", 3, uuid="c1"), conversion("add_to_cart", 2, uuid="c1")))
    assert post(sandbox.events_url, other).status_code == 204
    s = sandbox.stats()
    assert (s["events_stored"], s["duplicates"], s["conversions"]) == (4, 2, 3)


def test_faulty_bodies_never_crash_it(sandbox):
    junk = [b"\x00\xff" * 100, b'{"account_id": "12345678", "visitors": [1, "x", null]}',
            b'{"account_id": "12345678", "visitors": [{"visitor_id": "u", "snapshots": [{"events": [{}]}]}]}',
            b'{"account_id": "12345678", "visitors": [{"visitor_id": "u", "snapshots": '
            b'[{"decisions": [1], "events": [{"entity_id": "60001", "key": "campaign_activated", '
            b'"timestamp": 1, "uuid": "z"}]}]}]}',
            b'{"account_id": "12345678", "visitors": [{"visitor_id": "u", "snapshots": [{"events": '
            b'[{"entity_id": "40001", "key": "purchase", "timestamp": 99999999999999999999999, "uuid": "z"}]}]}]}']
    for data in junk:
        assert post(sandbox.events_url, data).status_code == 400
    assert requests.get(sandbox.url + "/admin/stats", timeout=10).json()["requests"] == {"400": len(junk)}
