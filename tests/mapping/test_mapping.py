"""map_events: every reason code, skip rules, keys, revenue, tags, uuids, impressions, the invariant."""

from __future__ import annotations

import orjson
import pandas as pd
import pytest

from toolkit.blueprint import load_blueprint
from toolkit.contracts import EVENTS, QUARANTINE, Reason, SkipRule
from toolkit.identity import stable_uuid
from toolkit.mapping import build_tags, map_events

from .builders import frame, row


def _map(rows, datafile, blueprint, **kw):
    res = map_events(frame(rows), datafile, blueprint, **kw)
    assert list(res.events.columns) == list(EVENTS) and list(res.quarantine.columns) == list(QUARANTINE)
    assert len(res.events) + len(res.quarantine) + sum(res.skipped.values()) == len(rows)
    return res


def _reasons(res) -> dict[int, str]:
    return dict(zip(res.quarantine["source_row"].tolist(), res.quarantine["reason"].tolist(), strict=True))


def test_default_table_maps_every_spelling(datafile, blueprint):
    names = {"Order Completed": "purchase", "order_completed": "purchase", "purchase": "purchase",
             "Product Added": "add_to_cart", "product_added": "add_to_cart", "add_to_cart": "add_to_cart",
             "Checkout Started": "begin_checkout", "checkout_started": "begin_checkout",
             "begin_checkout": "begin_checkout", "Form Submitted": "form_submit", "form_submitted": "form_submit",
             "signup": "signup"}  # a custom track event passes through by name
    res = _map([row(n) for n in names], datafile, blueprint)
    assert res.events["key"].tolist() == list(names.values())
    ids = {k: e.id for k, e in datafile.events.items()}
    assert res.events["entity_id"].tolist() == [ids[k] for k in names.values()]
    assert res.quarantine.empty


@pytest.mark.parametrize(("name", "hint"), [("Purchase", "purchase"), ("Add To Cart", "add_to_cart"),
                                            ("form-submit", "form_submit"), ("newsletter", None)])
def test_key_not_in_datafile_with_suggestion(datafile, blueprint, name, hint):
    res = _map([row(name)], datafile, blueprint)
    assert res.events.empty
    (q,) = res.quarantine.to_dict("records")
    assert q["reason"] == Reason.KEY_NOT_IN_DATAFILE
    assert repr(name) in q["detail"]
    if hint:
        assert f"did you mean `{hint}`?" in q["detail"]
    else:
        assert "did you mean" not in q["detail"]


def test_each_reason_code_and_skip_rule(datafile, blueprint):
    rows = [
        row("Order Completed", props={"revenue": 10, "currency": "USD"}, source_row=1),  # mapped
        row(None, source_row=2),  # missing_event_name
        row("signup", timestamp=None, source_row=3),  # unparseable_timestamp
        row("signup", anonymous_id=None, user_id=None, source_row=4),  # missing_visitor_id
        row("Order Completed", props={"revenue": "ten", "currency": "USD"}, source_row=5),  # invalid_revenue
        row("Order Completed", props={"revenue": 10, "currency": "DOGE"}, source_row=6),  # unknown_currency
        row("Product Added", props={"value": "lots"}, source_row=7),  # invalid_value
        row("Signup", source_row=8),  # key_not_in_datafile
        row("Experiment Viewed", props={"experiment_key": "nope", "variation_key": "a"}, source_row=9),
        row("Experiment Viewed", props={"experiment_key": "checkout_flow", "variation_key": "zzz"}, source_row=10),
        row("Order Completed", props={"notes": "x" * 5000}, source_row=11),  # event_too_large (cap below)
        row(None, type="page", source_row=12),
        row(None, type="identify", user_id="u", source_row=13),
        row("Experiment Viewed", props={"experiment_key": "checkout_flow", "variation_key": "checkout_new"},
            source_row=14),
    ]
    res = _map(rows, datafile, blueprint, max_bytes=4000)
    assert _reasons(res) == {
        2: Reason.MISSING_EVENT_NAME, 3: Reason.UNPARSEABLE_TIMESTAMP, 4: Reason.MISSING_VISITOR_ID,
        5: Reason.INVALID_REVENUE, 6: Reason.UNKNOWN_CURRENCY, 7: Reason.INVALID_VALUE,
        8: Reason.KEY_NOT_IN_DATAFILE, 9: Reason.UNKNOWN_EXPERIMENT, 10: Reason.UNKNOWN_VARIATION,
        11: Reason.EVENT_TOO_LARGE,
    }
    assert res.skipped == {SkipRule.NOT_TRACK: 2}
    assert res.events["source_row"].tolist() == [1, 14]
    details = dict(zip(res.quarantine["source_row"], res.quarantine["detail"], strict=True))
    assert "'ten'" in details[5] and "(property revenue)" in details[5]
    assert "'DOGE'" in details[6]
    assert "'lots'" in details[7]
    assert "checkout_control" in details[10]  # lists the variations the experiment has


def test_ignored_and_not_passed_through_events_are_skipped(datafile, tmp_path):
    bp_file = tmp_path / "bp.toml"
    bp_file.write_text('[unmapped]\npass_through = false\nignore = ["Order Completed"]\n')
    bp = load_blueprint(bp_file)
    res = _map([row("Order Completed"), row("signup"), row("Product Added")], datafile, bp)
    assert res.events["key"].tolist() == ["add_to_cart"]
    assert res.skipped == {SkipRule.BLUEPRINT_IGNORE: 2}


def test_decisions_none_skips_activations(datafile, blueprint):
    act = row("Experiment Viewed", props={"experiment_id": "50001", "variation_id": "70001"})
    res = _map([act, row("signup")], datafile, blueprint, activations=False)
    assert res.events["kind"].tolist() == ["conversion"]
    assert res.skipped == {SkipRule.ACTIVATIONS_OFF: 1}


def test_revenue_minor_units_and_tags(datafile, blueprint):
    rows = [
        row("Order Completed", props={"total": 89.99, "currency": "GBP", "order_id": "o-1",
                                      "products": [{"sku": "a"}, {"sku": "b"}, {"sku": "c"}]}),
        row("Order Completed", props={"revenue": "19.99"}),  # no currency: blueprint default, warned
        row("Order Completed", props={"revenue": 1200, "currency": "JPY"}),
        row("Order Completed", props={"revenue": "12.345", "currency": "kwd"}),
        row("Checkout Started", props={"value": 45.5, "currency": "EUR"}),  # cart value as revenue
        row("Product Added", props={"revenue": 12, "price": 3.5, "shipping": {"method": "dhl", "deep": {"x": 1}}}),
        row("Order Completed", props={}),  # a revenue event without revenue: warned, still sent
    ]
    res = _map(rows, datafile, blueprint)
    assert res.quarantine.empty
    assert res.events["revenue"].tolist() == [8999, 1999, 1200, 12345, 4550, pd.NA, pd.NA]
    tags = [orjson.loads(t) for t in res.events["tags"]]
    assert tags[0] == {"currency": "GBP", "order_id": "o-1", "products_count": 3, "revenue": 8999, "total": 89.99}
    assert tags[1] == {"currency": "USD", "revenue": 1999}
    assert tags[3]["currency"] == "KWD"
    assert tags[4] == {"currency": "EUR", "revenue": 4550, "value": 45.5}
    # revenue is not a revenue event's for add_to_cart: the raw property is not passed as a tag
    assert tags[5] == {"price": 3.5, "shipping.method": "dhl"}
    assert res.events["value"].tolist()[4] == 45.5
    assert res.warnings == {"default_currency": 1, "revenue_event_without_revenue": 1}
    # tags are sorted-key JSON text
    assert all(t == orjson.dumps(orjson.loads(t), option=orjson.OPT_SORT_KEYS).decode() for t in res.events["tags"])


def test_refunds_follow_the_blueprint(datafile, tmp_path):
    rows = [row("Order Completed", props={"revenue": -5, "currency": "USD"})]
    assert _reasons(_map(rows, datafile, load_blueprint())) == {rows[0]["source_row"]: Reason.INVALID_REVENUE}
    (tmp_path / "bp.toml").write_text("[revenue]\nallow_refunds = true\n")
    res = _map(rows, datafile, load_blueprint(tmp_path / "bp.toml"))
    assert res.events["revenue"].tolist() == [-500]


def test_tag_rules_drop_lists_and_objects(blueprint, tmp_path):
    props = {"a": 1, "b": None, "items": [1, 2], "obj": {"k": "v"}, "flag": True, "secret": "s"}
    assert orjson.loads(build_tags(props, blueprint.tags, revenue=None, value=None, currency=None)) == \
        {"a": 1, "items_count": 2, "obj.k": "v", "flag": True, "secret": "s"}
    (tmp_path / "bp.toml").write_text('[tags]\nlists = "drop"\nobjects = "drop"\nexclude = ["secret"]\n')
    rules = load_blueprint(tmp_path / "bp.toml").tags
    assert orjson.loads(build_tags(props, rules, revenue=None, value=None, currency=None)) == {"a": 1, "flag": True}


def test_uuids_timestamps_and_source_ids(datafile, blueprint):
    u = "3F2504E0-4F89-11D3-9A0C-0305E82C3301"
    rows = [row("signup", event_id=u), row("signup", event_id="not-a-uuid"), row("signup", event_id=None),
            row("signup", event_id=None)]
    res = _map(rows, datafile, blueprint)
    uuids = res.events["uuid"].tolist()
    assert uuids[0] == u.lower()
    assert uuids[1] == stable_uuid("not-a-uuid") != "not-a-uuid"
    assert uuids[2] != uuids[3]  # different content (anonymous id, timestamp), different uuid
    assert len(set(uuids)) == 4
    assert res.events["timestamp"].tolist() == [r["timestamp"] for r in rows]
    assert res.events["source_event_id"].tolist() == [u, "not-a-uuid", pd.NA, pd.NA]
    again = _map([dict(r) for r in rows], datafile, blueprint)
    assert again.events["uuid"].tolist() == uuids


def test_impressions_from_activations(datafile, blueprint):
    rows = [
        row("Experiment Viewed", props={"experiment_id": "50001", "variation_key": "checkout_new"}),
        row("experiment_viewed", props={"experiment_key": "pricing_page", "variation_id": 70004}),
        row("Experiment Viewed", props={"experiment_key": "group_exp_1", "variation_key": "g1_b"}),
        row("Experiment Viewed", props={"experiment_key": "old_banner", "variation_key": "banner_off"}),
    ]
    res = _map(rows, datafile, blueprint)
    ev = res.events
    assert ev["kind"].tolist() == ["impression"] * 4 and ev["key"].unique().tolist() == ["campaign_activated"]
    assert ev["entity_id"].tolist() == ev["campaign_id"].tolist() == ["60001", "60002", "60011", "60003"]
    assert ev["experiment_id"].tolist() == ["50001", "50002", "50011", "50003"]
    assert ev["variation_id"].tolist() == ["70002", "70004", "70012", "70005"]
    assert ev["rule_type"].tolist() == ["feature-test", "experiment", "experiment", "experiment"]
    assert ev["flag_key"].tolist() == ["new_checkout", "", "", ""]
    assert ev["rule_key"].tolist() == ["checkout_flow", "pricing_page", "group_exp_1", "old_banner"]
    assert ev["enabled"].tolist() == [True, True, True, True]
    assert not ev["synthesized"].any()
    # the uuid derives from the source id and the experiment: stable, and not the conversion's
    assert ev["uuid"].iloc[0] != stable_uuid(rows[0]["event_id"])
    assert res.warnings == {"impression_experiment_not_running": 1}


def test_activation_without_ids(datafile, blueprint):
    res = _map([row("Experiment Viewed", props={}), row("Experiment Viewed", props={"experiment_id": "50001"})],
               datafile, blueprint)
    assert sorted(res.quarantine["reason"]) == [Reason.UNKNOWN_EXPERIMENT, Reason.UNKNOWN_VARIATION]


def test_output_keeps_input_order_and_is_deterministic(datafile, blueprint):
    rows = [row("signup"), row("Experiment Viewed", props={"experiment_id": "50001", "variation_id": "70001"}),
            row("Order Completed", props={"revenue": 3, "currency": "USD"})]
    a = _map(rows, datafile, blueprint)
    b = _map(rows, datafile, blueprint)
    assert a.events["kind"].tolist() == ["conversion", "impression", "conversion"]
    pd.testing.assert_frame_equal(a.events, b.events)


def test_empty_chunk(datafile, blueprint):
    res = _map([], datafile, blueprint)
    assert res.events.empty and res.quarantine.empty and res.skipped == {}


def test_body_order_gives_the_same_events_sorted_as_bodies_group_them():
    """map_events(body_order=True): the export-order output reordered as iter_bodies would, so
    building bodies skips the sort; quarantine, counts and bodies are unchanged."""
    import numpy as np

    from tests.conftest import REPO
    from toolkit.datafile import load_datafile
    from toolkit.exports import load_export
    from toolkit.payload import body_order, iter_bodies

    sample = REPO / "data" / "sample"
    df, bp = load_datafile(str(sample / "datafile.json")), load_blueprint()
    normalized = load_export(sample / "export.jsonl").events
    a = map_events(normalized, df, bp)
    b = map_events(normalized, df, bp, body_order=True)
    assert (a.events["kind"] == "impression").any() and (a.events["kind"] == "conversion").any()
    order = body_order(a.events)
    assert not np.array_equal(order, np.arange(len(order)))  # export order is not body order here
    pd.testing.assert_frame_equal(b.events, a.events.iloc[order].reset_index(drop=True))
    assert np.array_equal(body_order(b.events), np.arange(len(b.events)))
    pd.testing.assert_frame_equal(a.quarantine, b.quarantine)
    assert (a.skipped, a.warnings) == (b.skipped, b.warnings)
    kw = dict(account_id=df.account_id, project_id=df.project_id, revision=df.revision, max_bytes=20_000)
    assert [x.data for x in iter_bodies(a.events, **kw)] == [x.data for x in iter_bodies(b.events, **kw)]


@pytest.mark.parametrize("seed", range(6))
def test_the_in_order_check_agrees_with_the_sort(seed):
    """body_order's shortcut (rows already in order: no sort) says yes exactly when the sort would
    leave the rows where they are: ties, equal visitors, impressions and conversions mixed."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from toolkit.payload import _in_order

    rnd = np.random.default_rng(seed)
    for _ in range(200):
        n = int(rnd.integers(2, 9))
        table = pa.table({"visitor": pa.array([f"v{x}" for x in rnd.integers(0, 3, n)]),
                          "kind": pa.array(rnd.integers(0, 2, n).astype(np.int8)),
                          "ts": pa.array(rnd.integers(0, 3, n).astype(np.int64)),
                          "uuid": pa.array([f"u{x}" for x in rnd.integers(0, 3, n)])})
        if rnd.random() < 0.7:  # mostly sorted frames, some with two rows swapped
            table = table.take(pc.sort_indices(table, [(c, "ascending") for c in table.column_names]))
            if rnd.random() < 0.3:
                i, j = rnd.choice(n, 2, replace=False)
                idx = np.arange(n)
                idx[[i, j]] = idx[[j, i]]
                table = table.take(pa.array(idx))
        keys = [(c, "ascending", "at_start") for c in table.column_names]
        stays = np.array_equal(pc.sort_indices(table, sort_keys=keys).to_numpy(), np.arange(n))
        assert _in_order(table) == stays


@pytest.mark.parametrize("name", ["export.jsonl", "export.csv", "export.parquet"])
def test_loader_frames_map_the_same_with_or_without_the_canonical_hint(name, datafile, blueprint):
    """The loader marks its properties texts as canonical (orjson, sorted keys), which lets the
    mapper keep a text as the tags without parsing it; the events are the same byte for byte as
    when the frame carries no such mark (every row parsed)."""
    from pathlib import Path

    from toolkit.contracts import PROPERTIES_CANONICAL
    from toolkit.exports import load_export

    loaded = load_export(Path(__file__).parents[2] / "data" / "sample" / name).events
    assert loaded.attrs.get(PROPERTIES_CANONICAL) is True
    plain = loaded.copy()
    plain.attrs.clear()
    fast, slow = map_events(loaded, datafile, blueprint), map_events(plain, datafile, blueprint)
    assert (fast.events["kind"] == "conversion").sum() > 50
    pd.testing.assert_frame_equal(fast.events, slow.events)
    pd.testing.assert_frame_equal(fast.quarantine, slow.quarantine)


def test_a_chunk_with_text_orjson_cannot_write_is_not_marked_canonical(tmp_path, datafile, blueprint):
    """An integer beyond 64 bits is written by the standard library: that chunk's texts are not
    all orjson's, the mark says so, and the row's tags come from parsing it like any other."""
    from toolkit.contracts import PROPERTIES_CANONICAL
    from toolkit.exports import load_export

    lines = ['{"messageId":"m1","type":"track","event":"Product Added","anonymousId":"a1",'
             '"timestamp":"2026-01-05T08:00:01.000Z","properties":{"sku":"s","currency":"GBP","big":' + str(10**30) + "}}",
             '{"messageId":"m2","type":"track","event":"Product Added","anonymousId":"a1",'
             '"timestamp":"2026-01-05T08:00:02.000Z","properties":{"sku":"t","currency":"GBP"}}']
    path = tmp_path / "big.jsonl"
    path.write_text("\n".join(lines) + "\n")
    loaded = load_export(path).events
    assert loaded.attrs.get(PROPERTIES_CANONICAL) is False
    plain = loaded.copy()
    plain.attrs.clear()
    pd.testing.assert_frame_equal(map_events(loaded, datafile, blueprint).events,
                                  map_events(plain, datafile, blueprint).events)
