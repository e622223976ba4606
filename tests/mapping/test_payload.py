"""Bodies: the SDK's shape (conformance), the size cap, ordering and determinism."""

from __future__ import annotations

import orjson
import pandas as pd
import pytest
from optimizely.event.event_factory import EventFactory
from optimizely.event.user_event_factory import UserEventFactory
from optimizely.logger import NoOpLogger

from toolkit import __version__
from toolkit.contracts import CLIENT_NAME, EVENTS, Reason, conform
from toolkit.payload import DEFAULT_MAX_BYTES, EVENT_API_LIMIT, iter_bodies


def _events(rows: list[dict]) -> pd.DataFrame:
    return conform(pd.DataFrame.from_records(rows), EVENTS)


def imp(visitor, ts, uuid, exp_id="50001", var_id="70002", **kw):
    base = dict(kind="impression", uuid=uuid, visitor_id=visitor, timestamp=ts, key="campaign_activated",
                entity_id="60001", campaign_id="60001", experiment_id=exp_id, variation_id=var_id,
                flag_key="new_checkout", rule_key="checkout_flow", rule_type="feature-test",
                variation_key="checkout_new", enabled=True, tags="{}")
    return base | kw


def conv(visitor, ts, uuid, key="purchase", entity="40001", revenue=None, value=None, tags=None):
    t = dict(tags or {})
    if revenue is not None:
        t["revenue"] = revenue
    if value is not None:
        t["value"] = value
    return dict(kind="conversion", uuid=uuid, visitor_id=visitor, timestamp=ts, key=key, entity_id=entity,
                revenue=revenue, value=value, tags=orjson.dumps(t, option=orjson.OPT_SORT_KEYS).decode())


def _bodies(events, datafile, **kw):
    return list(iter_bodies(events, account_id=datafile.account_id, project_id=datafile.project_id,
                            revision=datafile.revision, anonymize_ip=datafile.anonymize_ip,
                            bot_filtering=datafile.bot_filtering, **kw))


def _sdk_body(datafile, user_events):
    return EventFactory.create_log_event(user_events, NoOpLogger()).params


def _strip_ours(body: dict) -> dict:
    """Our body with the fields the brief lets differ set aside (uuid, timestamp, client)."""
    out = orjson.loads(orjson.dumps(body))
    out.pop("client_name"), out.pop("client_version")
    for v in out["visitors"]:
        for s in v["snapshots"]:
            for e in s["events"]:
                e.pop("uuid"), e.pop("timestamp")
    return out


def test_conformance_with_the_sdk_event_factory(datafile):
    """The same events built by optimizely-sdk's UserEventFactory + EventFactory, field by field."""
    pc = datafile.project_config()
    tags = {"currency": "GBP", "order_id": "o-1", "products_count": 2, "revenue": 8999, "value": 89.99}
    sdk_events = [
        UserEventFactory.create_impression_event(pc, pc.get_experiment_from_key("checkout_flow"), "70002",
                                                 "new_checkout", "checkout_flow", "feature-test", True,
                                                 "visitor-1", None, None),
        UserEventFactory.create_impression_event(pc, pc.get_experiment_from_key("pricing_page"), "70003",
                                                 "", "pricing_page", "experiment", True, "visitor-1", None, None),
        UserEventFactory.create_conversion_event(pc, "purchase", "visitor-1", None, tags),
        UserEventFactory.create_conversion_event(pc, "form_submit", "visitor-1", None, None),
        UserEventFactory.create_conversion_event(pc, "add_to_cart", "visitor-1", None, {"sku": "A1", "value": 3.5}),
    ]
    sdk = _sdk_body(datafile, sdk_events)
    ours_events = _events([
        imp("visitor-1", 1, "u1"),
        imp("visitor-1", 2, "u2", exp_id="50002", var_id="70003", entity_id="60002", campaign_id="60002",
            flag_key="", rule_key="pricing_page", rule_type="experiment", variation_key="pricing_a"),
        conv("visitor-1", 3, "u3", revenue=8999, value=89.99, tags={"currency": "GBP", "order_id": "o-1",
                                                                     "products_count": 2}),
        conv("visitor-1", 4, "u4", key="form_submit", entity="40004"),
        conv("visitor-1", 5, "u5", key="add_to_cart", entity="40002", value=3.5, tags={"sku": "A1"}),
    ])
    (body,) = _bodies(ours_events, datafile)
    ours = orjson.loads(body.data)
    assert ours["client_name"] == CLIENT_NAME and ours["client_version"] == __version__
    # the SDK sends one visitor per event; we send one visitor with all of its snapshots, in order
    sdk_flat = dict(sdk)
    sdk_flat["visitors"] = [{"snapshots": [s for v in sdk["visitors"] for s in v["snapshots"]],
                             "attributes": sdk["visitors"][0]["attributes"], "visitor_id": "visitor-1"}]
    assert _strip_ours(ours) == _strip_ours(sdk_flat)
    # and the key order of every object is the SDK's (so bodies diff cleanly against SDK captures)
    assert list(ours) == list(sdk)
    assert list(ours["visitors"][0]) == list(sdk["visitors"][0])
    assert list(ours["visitors"][0]["snapshots"][0]["decisions"][0]["metadata"]) == \
        list(sdk["visitors"][0]["snapshots"][0]["decisions"][0]["metadata"])
    # the bot filtering attribute exists because the fixture datafile sets botFiltering
    assert ours["visitors"][0]["attributes"] == [
        {"entity_id": "$opt_bot_filtering", "key": "$opt_bot_filtering", "type": "custom", "value": False}]


def test_revenue_is_always_an_integer_where_the_sdk_would_drop_it(datafile):
    """The SDK silently drops a non-integer revenue tag; ours is integer minor units by construction."""
    pc = datafile.project_config()
    sdk = _sdk_body(datafile, UserEventFactory.create_conversion_event(pc, "purchase", "v", None, {"revenue": 89.99}))
    assert "revenue" not in sdk["visitors"][0]["snapshots"][0]["events"][0]
    (body,) = _bodies(_events([conv("v", 1, "u", revenue=8999)]), datafile)
    ev = orjson.loads(body.data)["visitors"][0]["snapshots"][0]["events"][0]
    assert ev["revenue"] == 8999 and isinstance(ev["revenue"], int)


def test_impressions_precede_conversions_and_visitors_are_grouped(datafile):
    events = _events([
        conv("b", 10, "u-b1"), conv("a", 5, "u-a1"), imp("a", 50, "u-a0"), conv("a", 1, "u-a2"),
        imp("b", 99, "u-b0"),
    ])
    (body,) = _bodies(events, datafile)
    doc = orjson.loads(body.data)
    assert [v["visitor_id"] for v in doc["visitors"]] == ["a", "b"]
    a = doc["visitors"][0]["snapshots"]
    assert [s["events"][0]["uuid"] for s in a] == ["u-a0", "u-a2", "u-a1"]  # impression, then by time
    assert "decisions" in a[0] and all("decisions" not in s for s in a[1:])
    assert body.events["uuid"].tolist() == ["u-a0", "u-a2", "u-a1", "u-b0", "u-b1"]
    assert body.n_visitors == 2


def test_same_events_in_any_order_give_the_same_bodies(datafile):
    rows = [conv(f"v{i % 7}", i, f"u{i}", revenue=i) for i in range(200)] + [imp(f"v{i}", 1000 + i, f"i{i}")
                                                                            for i in range(7)]
    a = _bodies(_events(rows), datafile, max_bytes=4000)
    b = _bodies(_events(rows[::-1]), datafile, max_bytes=4000)
    assert len(a) > 3
    assert [x.data for x in a] == [x.data for x in b]
    assert [x.batch_id for x in a] == [x.batch_id for x in b]
    assert len({x.batch_id for x in a}) == len(a)


def test_default_cap_is_under_the_event_api_limit():
    assert DEFAULT_MAX_BYTES < EVENT_API_LIMIT == 3_500_000


def test_bodies_never_exceed_the_cap_and_carry_every_event_once(datafile):
    big_tag = {"note": "x" * 900}
    rows = [conv(f"v{i % 13}", i, f"u{i:05d}", tags=big_tag) for i in range(3000)]
    rows += [imp(f"v{i}", 5000 + i, f"imp{i}") for i in range(13)]
    cap = 64_000
    bodies = _bodies(_events(rows), datafile, max_bytes=cap)
    assert len(bodies) > 40
    assert all(b.size <= cap for b in bodies)
    assert max(b.size for b in bodies) > cap * 0.9  # packed, not one visitor per body
    seen = [u for b in bodies for u in b.events["uuid"]]
    assert sorted(seen) == sorted(r["uuid"] for r in rows)
    for b in bodies:  # the frame travels with its body, in body order
        doc = orjson.loads(b.data)
        uuids = [s["events"][0]["uuid"] for v in doc["visitors"] for s in v["snapshots"]]
        assert uuids == b.events["uuid"].tolist()


def test_a_tiny_cap_splits_a_visitor_over_bodies_in_order(datafile):
    rows = [imp("solo", 0, "i0")] + [conv("solo", i, f"u{i:03d}") for i in range(1, 40)]
    one = _bodies(_events(rows), datafile)[0]
    cap = len(one.data) // 4  # room for a handful of snapshots per body
    bodies = _bodies(_events(rows), datafile, max_bytes=cap)
    assert len(bodies) > 3 and all(b.size <= cap for b in bodies)
    order = [u for b in bodies for u in b.events["uuid"]]
    assert order == ["i0"] + [f"u{i:03d}" for i in range(1, 40)]
    assert all(orjson.loads(b.data)["visitors"][0]["visitor_id"] == "solo" for b in bodies)


def test_an_event_alone_over_the_cap_is_rejected_not_sent(datafile):
    rows = [conv("v", 1, "small"), conv("v", 2, "huge", tags={"blob": "y" * 20_000})]
    rejected = []
    bodies = _bodies(_events(rows), datafile, max_bytes=10_000,
                     on_reject=lambda frame, reason, detail: rejected.append((frame["uuid"].tolist(), reason)))
    assert [u for b in bodies for u in b.events["uuid"]] == ["small"]
    assert rejected == [(["huge"], Reason.EVENT_TOO_LARGE)]


def test_conversion_without_entity_id_is_rejected(datafile):
    rows = [conv("v", 1, "ok"), conv("v", 2, "nokey", key="Purchase", entity=None)]
    rejected = []
    bodies = _bodies(_events(rows), datafile, on_reject=lambda f, r, d: rejected.append((f["uuid"].tolist(), r)))
    assert [u for b in bodies for u in b.events["uuid"]] == ["ok"]
    assert rejected == [(["nokey"], Reason.KEY_NOT_IN_DATAFILE)]


def test_no_events_no_bodies_and_absurd_cap_is_an_error(datafile):
    assert _bodies(_events([]), datafile) == []
    with pytest.raises(ValueError):
        _bodies(_events([conv("v", 1, "u")]), datafile, max_bytes=50)


def test_anonymize_ip_and_no_bot_filtering(datafile):
    (body,) = list(iter_bodies(_events([conv("v", 1, "u")]), account_id="1", project_id="2", revision="3",
                               anonymize_ip=False))
    doc = orjson.loads(body.data)
    assert doc["anonymize_ip"] is False and doc["enrich_decisions"] is True
    assert doc["visitors"][0]["attributes"] == []  # botFiltering unset: the SDK adds nothing
