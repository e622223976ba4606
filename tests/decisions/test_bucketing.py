"""Offline bucketing agrees with the official optimizely-sdk, on its published vectors and on its
own decisions (get_variation / decide) for a few thousand generated users."""

from __future__ import annotations

import random
import uuid

import pytest
from optimizely import optimizely
from optimizely.decision.optimizely_decide_option import OptimizelyDecideOption
from optimizely.logger import NoOpLogger

from toolkit.bucketing import IMPRESSION_NAMESPACE, bucket_impressions, bucket_value, impression_uuid
from toolkit.contracts import CAMPAIGN_ACTIVATED, EVENTS

from .builders import (
    CHECKOUT,
    GROUP1,
    GROUP2,
    NEW,
    OLD_BANNER,
    PRICING,
    conv,
    datafile_with,
    fixture_datafile,
    frame,
)

# The SDK's published test vectors (facts file, section 5).
VECTORS = [("ppid1", "1886780721", 5254), ("ppid2", "1886780721", 4299),
           ("ppid2", "1886780722", 2434), ("ppid3", "1886780721", 5439)]


@pytest.mark.parametrize(("user", "parent", "bucket"), VECTORS)
def test_published_bucket_vectors(user, parent, bucket):
    assert bucket_value(user, parent) == bucket


def _vector_datafile():
    """Two experiments whose ids are the vectors' and whose ranges split right at each vector."""

    def edit(raw):
        def exp(eid, ranges):
            return {"id": eid, "key": f"vec_{eid}", "status": "Running", "layerId": f"l{eid}", "audienceIds": [],
                    "forcedVariations": {},
                    "variations": [{"id": f"{eid}-{i}", "key": f"v{i}", "variables": []} for i in range(len(ranges))],
                    "trafficAllocation": [{"entityId": f"{eid}-{i}", "endOfRange": r} for i, r in enumerate(ranges)]}

        raw["experiments"] += [exp("1886780721", [4300, 5254, 5255, 5439, 5440, 10000]),
                               exp("1886780722", [2434, 2435, 10000])]
        raw["events"].append({"id": "49999", "key": "vec", "experimentIds": ["1886780721", "1886780722"]})

    return datafile_with(edit)


def test_vectors_through_the_decision_path():
    """bucket_impressions (DecisionService -> Bucketer) puts each vector user in the range of its bucket."""
    df = _vector_datafile()
    out = bucket_impressions(frame(conv("ppid1", "vec", 1000), conv("ppid2", "vec", 1000), conv("ppid3", "vec", 1000)), df)
    got = {(r.visitor_id, r.experiment_id): r.variation_key for r in out.itertuples()}
    # 5254 is in [5254, 5255) -> v2; 4299 < 4300 -> v0; 5439 in [5439, 5440) -> v4; 2434 in [2434, 2435) -> v1
    assert got == {("ppid1", "1886780721"): "v2", ("ppid2", "1886780721"): "v0",
                   ("ppid3", "1886780721"): "v4", ("ppid2", "1886780722"): "v1",
                   ("ppid1", "1886780722"): "v2", ("ppid3", "1886780722"): "v2"}


def _users(n: int, seed: int = 11) -> tuple[list[str], dict[str, dict]]:
    rnd = random.Random(seed)
    users = [str(uuid.UUID(int=rnd.getrandbits(128), version=4)) for _ in range(n)] + ["qa_user"]
    attrs: dict[str, dict] = {}
    for u in users:
        a: dict = {}
        c = rnd.choice(["GB", "US", None])
        if c:
            a["country"] = c
        if rnd.random() < 0.1:
            a["$opt_bucketing_id"] = f"bid-{rnd.randrange(500)}"
        if a:
            attrs[u] = a
    return users, attrs


def test_agrees_with_sdk_get_variation_for_generated_users():
    df = fixture_datafile()
    users, attrs = _users(3000)
    events = frame(*[conv(u, k, 1_000_000 + i) for i, u in enumerate(users) for k in ("purchase", "signup")])
    out = bucket_impressions(events, df, attributes=attrs)
    ours = {(r.visitor_id, r.rule_key): r.variation_key for r in out.itertuples()}

    client = optimizely.Optimizely(datafile=df.text, logger=NoOpLogger())
    try:
        sdk = {}
        for u in users:
            for key in ("checkout_flow", "pricing_page", "group_exp_1"):
                v = client.get_variation(key, u, attrs.get(u))
                if v is not None:
                    sdk[(u, key)] = v
        # the flag path: decide() on the feature test must agree too
        for u in users[:1000] + ["qa_user"]:
            d = client.create_user_context(u, attrs.get(u)).decide(
                "new_checkout", [OptimizelyDecideOption.DISABLE_DECISION_EVENT])
            if d.rule_key == "checkout_flow":
                assert ours.get((u, "checkout_flow")) == d.variation_key, u
            else:
                assert (u, "checkout_flow") not in ours, u
    finally:
        client.close()

    assert ours == sdk
    # the run covered every branch: forced variation, audience pass and fail, group in and out
    assert ours[("qa_user", "checkout_flow")] == "checkout_new"
    in_pricing = {u for (u, k) in ours if k == "pricing_page"}
    assert in_pricing and all(attrs.get(u, {}).get("country") == "GB" for u in in_pricing)
    assert 0 < sum(k == "group_exp_1" for (_, k) in ours) < len(users)
    assert not any(k == "group_exp_2" for (_, k) in ours)  # no converting key is attached to it


def test_impression_rows_follow_the_contract():
    df = fixture_datafile()
    events = frame(conv("qa_user", "add_to_cart", 5000), conv("qa_user", "purchase", 7000),
                   conv("qa_user", "add_to_cart", 4000))
    out = bucket_impressions(events, df)
    assert list(out.columns) == list(EVENTS)
    assert {k: str(t) for k, t in out.dtypes.items()} == EVENTS
    row = out[out["experiment_id"] == CHECKOUT].iloc[0]
    assert row["kind"] == "impression" and row["key"] == CAMPAIGN_ACTIVATED
    assert row["entity_id"] == row["campaign_id"] == "60001"
    assert row["variation_id"] == NEW and row["variation_key"] == "checkout_new"
    assert (row["flag_key"], row["rule_key"], row["rule_type"]) == ("new_checkout", "checkout_flow", "feature-test")
    assert bool(row["enabled"]) is True and bool(row["synthesized"]) is True
    assert row["timestamp"] == 3999  # 1 ms before the visitor's first event
    assert row["uuid"] == str(uuid.uuid5(IMPRESSION_NAMESPACE, f"qa_user\x1f{CHECKOUT}"))
    assert out["synthesized"].all()


def test_uuids_are_stable_and_distinct():
    df = fixture_datafile()
    events = frame(*[conv(f"user-{i}", "purchase", 1000 + i) for i in range(300)])
    a = bucket_impressions(events, df)
    b = bucket_impressions(events.iloc[::-1].reset_index(drop=True), df)
    assert a.equals(b)  # order of the input does not matter
    assert a["uuid"].is_unique
    assert impression_uuid("v", "1") == impression_uuid("v", "1") != impression_uuid("v", "2")


def test_only_converting_visitors_on_running_experiment_keys():
    df = datafile_with(lambda raw: raw["events"][3]["experimentIds"].append(OLD_BANNER))  # form_submit -> paused
    events = frame(conv("only-form", "form_submit", 10), conv("unknown-key", "nope", 10),
                   {**conv("no-visitor", "purchase", 10), "visitor_id": None},
                   {"kind": "impression", "uuid": "x", "visitor_id": "impression-only", "timestamp": 5,
                    "key": CAMPAIGN_ACTIVATED, "experiment_id": CHECKOUT})
    assert bucket_impressions(events, df).empty


def test_audience_needs_attributes():
    df = fixture_datafile()
    events = frame(*[conv(f"u{i}", "signup", 100) for i in range(200)])
    assert not (bucket_impressions(events, df)["experiment_id"] == PRICING).any()
    gb = {f"u{i}": {"country": "GB"} for i in range(200)}
    with_attrs = bucket_impressions(events, df, attributes=gb)
    assert (with_attrs["experiment_id"] == PRICING).sum() == 200  # 100% traffic, everyone GB


def test_group_is_mutually_exclusive():
    df = fixture_datafile()
    events = frame(*[conv(f"u{i}", "purchase", 100) for i in range(2000)])
    out = bucket_impressions(events, df)
    g1 = set(out.loc[out["experiment_id"] == GROUP1, "visitor_id"])
    expected = {f"u{i}" for i in range(2000) if bucket_value(f"u{i}", "80001") < 5000}
    assert g1 == expected
    assert not (out["experiment_id"] == GROUP2).any()


def test_whitelist_before_audience_and_odd_bucketing_ids_agree_with_sdk():
    """Order of the SDK's checks: a whitelisted user skips the audience; a non-string
    $opt_bucketing_id falls back to the user id; a paused experiment decides nobody."""

    def edit(raw):
        raw["experiments"][1]["forcedVariations"] = {"forced_us": "pricing_b"}
        raw["events"][4]["experimentIds"].append(OLD_BANNER)  # signup -> pricing_page and the paused one

    df = datafile_with(edit)
    users = ["forced_us", "plain"] + [f"u{i}" for i in range(300)]
    attrs = {"forced_us": {"country": "US"}, "plain": {"country": "GB", "$opt_bucketing_id": 12345}}
    attrs |= {f"u{i}": {"country": "GB", "$opt_bucketing_id": f"shared-{i % 7}"} for i in range(300)}
    out = bucket_impressions(frame(*[conv(u, "signup", 10) for u in users]), df, attributes=attrs)
    ours = {(r.visitor_id, r.rule_key): r.variation_key for r in out.itertuples()}
    client = optimizely.Optimizely(datafile=df.text, logger=NoOpLogger())
    try:
        sdk = {(u, k): v for u in users for k in ("pricing_page", "old_banner")
               if (v := client.get_variation(k, u, attrs.get(u))) is not None}
    finally:
        client.close()
    assert ours == sdk
    assert ours[("forced_us", "pricing_page")] == "pricing_b"
    assert len({ours[(f"u{i}", "pricing_page")] for i in range(0, 300, 7)}) == 1  # same bucketing id
