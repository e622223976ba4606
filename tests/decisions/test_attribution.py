"""The attribution predictor: one hand-built case per rule, and a brute-force reference on random events."""

from __future__ import annotations

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolkit.attribution import COUNTS, NOT_COUNTED, NotCountedReason, predict

from .builders import (
    BANNER_OFF,
    CHECKOUT,
    CONTROL,
    G1_A,
    GROUP1,
    GROUP2,
    NEW,
    OLD_BANNER,
    PRICING,
    PRICING_A,
    ROLLOUT,
    ROLLOUT_ON,
    conv,
    fixture_datafile,
    frame,
    imp,
)

DF = fixture_datafile()


def cell(pred, experiment, variation, key) -> dict:
    c = pred.counts
    row = c[(c["experiment_id"] == experiment) & (c["variation_id"] == variation) & (c["event_key"] == key)]
    assert len(row) == 1, (experiment, variation, key)
    return {k: int(row.iloc[0][k]) for k in ("visitors", "unique_conversions", "total_conversions", "revenue")}


def reasons(pred) -> list[tuple]:
    nc = pred.not_counted
    return [tuple(None if pd.isna(v) else v for v in r) for r in nc[["uuid", "experiment_id", "reason"]].itertuples(index=False)]


def test_schemas_and_zero_grid():
    pred = predict(frame(), DF)
    assert {k: str(t) for k, t in pred.counts.dtypes.items()} == COUNTS
    assert {k: str(t) for k, t in pred.not_counted.dtypes.items()} == NOT_COUNTED
    assert pred.not_counted.empty
    c = pred.counts
    # every running experiment x variation x attached key, zeros included
    assert set(zip(c["experiment_key"], c["variation_key"], c["event_key"].fillna("-"), strict=True)) == {
        ("checkout_flow", v, k) for v in ("checkout_control", "checkout_new")
        for k in ("purchase", "add_to_cart", "begin_checkout")
    } | {("pricing_page", v, k) for v in ("pricing_a", "pricing_b") for k in ("purchase", "signup")} | {
        ("group_exp_1", v, "purchase") for v in ("g1_a", "g1_b")
    } | {("group_exp_2", "g2_a", "-")}  # no key attached: one row keeps its reach
    assert (c[["visitors", "unique_conversions", "total_conversions", "revenue"]] == 0).all().all()
    assert OLD_BANNER not in set(c["experiment_id"]) and ROLLOUT not in set(c["experiment_id"])


def test_decision_strictly_earlier_counts():
    pred = predict(frame(imp("v", CHECKOUT, CONTROL, 100), conv("v", "purchase", 101, 500)), DF)
    assert cell(pred, CHECKOUT, CONTROL, "purchase") == {
        "visitors": 1, "unique_conversions": 1, "total_conversions": 1, "revenue": 500}
    assert pred.not_counted.empty


def test_timestamp_tie_does_not_count():
    pred = predict(frame(imp("v", CHECKOUT, CONTROL, 100), conv("v", "purchase", 100, 500, uuid="c1")), DF)
    assert cell(pred, CHECKOUT, CONTROL, "purchase") == {
        "visitors": 1, "unique_conversions": 0, "total_conversions": 0, "revenue": 0}
    assert reasons(pred) == [("c1", CHECKOUT, "decision_after_conversion")]


def test_decision_after_conversion():
    pred = predict(frame(conv("v", "purchase", 50, uuid="early"), imp("v", CHECKOUT, CONTROL, 100),
                         conv("v", "purchase", 150, uuid="late")), DF)
    assert cell(pred, CHECKOUT, CONTROL, "purchase")["total_conversions"] == 1
    assert reasons(pred) == [("early", CHECKOUT, "decision_after_conversion")]


def test_first_variation_wins():
    # sees control at 100, new at 200; both conversions go to control, reach only in control
    pred = predict(frame(imp("v", CHECKOUT, NEW, 200), imp("v", CHECKOUT, CONTROL, 100),
                         conv("v", "purchase", 150, 10), conv("v", "purchase", 250, 20)), DF)
    assert cell(pred, CHECKOUT, CONTROL, "purchase") == {
        "visitors": 1, "unique_conversions": 1, "total_conversions": 2, "revenue": 30}
    assert cell(pred, CHECKOUT, NEW, "purchase") == {
        "visitors": 0, "unique_conversions": 0, "total_conversions": 0, "revenue": 0}


def test_first_variation_tie_goes_to_the_first_sent():
    a = predict(frame(imp("v", CHECKOUT, NEW, 100), imp("v", CHECKOUT, CONTROL, 100), conv("v", "purchase", 101)), DF)
    b = predict(frame(imp("v", CHECKOUT, CONTROL, 100), imp("v", CHECKOUT, NEW, 100), conv("v", "purchase", 101)), DF)
    assert cell(a, CHECKOUT, NEW, "purchase")["total_conversions"] == 1
    assert cell(a, CHECKOUT, CONTROL, "purchase")["visitors"] == 0
    assert cell(b, CHECKOUT, CONTROL, "purchase")["total_conversions"] == 1
    assert cell(b, CHECKOUT, NEW, "purchase")["visitors"] == 0


def test_visitor_in_two_experiments_counts_in_both():
    pred = predict(frame(imp("v", CHECKOUT, NEW, 10), imp("v", PRICING, PRICING_A, 20),
                         conv("v", "purchase", 15, 100), conv("v", "purchase", 25, 200), conv("v", "signup", 30)), DF)
    assert cell(pred, CHECKOUT, NEW, "purchase") == {
        "visitors": 1, "unique_conversions": 1, "total_conversions": 2, "revenue": 300}
    # the first purchase (15) is before the pricing decision (20): it counts in checkout only
    assert cell(pred, PRICING, PRICING_A, "purchase") == {
        "visitors": 1, "unique_conversions": 1, "total_conversions": 1, "revenue": 200}
    assert cell(pred, PRICING, PRICING_A, "signup")["total_conversions"] == 1
    assert reasons(pred) == [("conv-v-purchase-15", PRICING, "decision_after_conversion")]


def test_not_in_other_experiment_of_the_key_is_not_a_reason():
    # purchase is attached to checkout, pricing and group_exp_1: being in checkout only is normal
    pred = predict(frame(imp("v", CHECKOUT, CONTROL, 10), conv("v", "purchase", 20)), DF)
    assert pred.not_counted.empty


def test_paused_and_rollout_decisions_decide_nothing():
    pred = predict(frame(imp("v", OLD_BANNER, BANNER_OFF, 10), imp("v", ROLLOUT, ROLLOUT_ON, 10),
                         conv("v", "purchase", 20, uuid="c")), DF)
    assert int(pred.counts["visitors"].sum()) == 0
    assert reasons(pred) == [("c", CHECKOUT, "no_decision"), ("c", PRICING, "no_decision"),
                             ("c", GROUP1, "no_decision")]


def test_unknown_experiment_or_foreign_variation_decides_nothing():
    pred = predict(frame(imp("v", "999", CONTROL, 10), imp("v", CHECKOUT, PRICING_A, 10),
                         conv("v", "add_to_cart", 20, uuid="c")), DF)
    assert int(pred.counts["visitors"].sum()) == 0
    assert reasons(pred) == [("c", CHECKOUT, "no_decision")]


def test_key_not_in_datafile_counts_nowhere():
    pred = predict(frame(imp("v", CHECKOUT, CONTROL, 10), conv("v", "Purchase", 20, 999, uuid="c")), DF)
    assert int(pred.counts["total_conversions"].sum()) == 0
    assert reasons(pred) == [("c", None, "key_not_in_datafile")]


def test_key_not_in_experiment():
    pred = predict(frame(imp("v", CHECKOUT, CONTROL, 10),
                         conv("v", "signup", 20, uuid="signup"),  # signup is a metric of pricing only
                         conv("v", "form_submit", 30, uuid="form"),  # form_submit of no experiment
                         conv("w", "form_submit", 30, uuid="form-w")), DF)  # even with no decision at all
    assert reasons(pred) == [("signup", None, "key_not_in_experiment"), ("form", None, "key_not_in_experiment"),
                             ("form-w", None, "key_not_in_experiment")]


def test_no_decision_one_row_per_experiment_of_the_key():
    pred = predict(frame(conv("v", "signup", 20, uuid="s"), conv("v", "purchase", 20, uuid="p")), DF)
    assert reasons(pred) == [("s", PRICING, "no_decision"), ("p", CHECKOUT, "no_decision"),
                             ("p", PRICING, "no_decision"), ("p", GROUP1, "no_decision")]


def test_duplicate_conversions_count_once_first_kept():
    pred = predict(frame(imp("v", CHECKOUT, CONTROL, 10), conv("v", "purchase", 20, 100, uuid="c"),
                         conv("v", "purchase", 20, 700, uuid="c"),  # same entity, uuid, timestamp
                         conv("v", "purchase", 21, 50, uuid="c")), DF)  # other timestamp: not a duplicate
    assert cell(pred, CHECKOUT, CONTROL, "purchase") == {
        "visitors": 1, "unique_conversions": 1, "total_conversions": 2, "revenue": 150}
    assert reasons(pred) == [("c", None, "duplicate")]


def test_duplicate_impressions_count_once():
    # the second impression repeats (entity_id, uuid, timestamp) of the first: Optimizely drops it,
    # so visitor w has no decision
    pred = predict(frame(imp("v", CHECKOUT, CONTROL, 10, uuid="i"), imp("w", CHECKOUT, NEW, 10, uuid="i"),
                         conv("w", "add_to_cart", 20, uuid="c")), DF)
    assert cell(pred, CHECKOUT, NEW, "add_to_cart")["visitors"] == 0
    assert cell(pred, CHECKOUT, CONTROL, "add_to_cart")["visitors"] == 1
    assert reasons(pred) == [("c", CHECKOUT, "no_decision")]


def test_unique_total_and_null_revenue():
    pred = predict(frame(imp("v", GROUP1, G1_A, 1), imp("w", GROUP1, G1_A, 1), imp("x", GROUP1, G1_A, 1),
                         conv("v", "purchase", 2, 100), conv("v", "purchase", 3, None), conv("w", "purchase", 4, 5)), DF)
    assert cell(pred, GROUP1, G1_A, "purchase") == {
        "visitors": 3, "unique_conversions": 2, "total_conversions": 3, "revenue": 105}


def test_group_experiment_without_keys_keeps_its_reach():
    pred = predict(frame(imp("v", GROUP2, "70013", 1)), DF)
    row = pred.counts[pred.counts["experiment_id"] == GROUP2]
    assert len(row) == 1 and pd.isna(row.iloc[0]["event_key"]) and int(row.iloc[0]["visitors"]) == 1


def test_input_frame_is_not_modified():
    ev = frame(imp("v", CHECKOUT, CONTROL, 1), conv("v", "purchase", 2, 1))
    before = ev.copy()
    predict(ev, DF)
    pd.testing.assert_frame_equal(ev, before)


def test_reasons_summary_lists_every_reason():
    pred = predict(frame(conv("v", "nope", 1)), DF)
    assert pred.reasons() == {r.value: int(r == NotCountedReason.KEY_NOT_IN_DATAFILE) for r in NotCountedReason}


# ------------------------------------------------------------------ brute-force reference


def reference(events: pd.DataFrame, df) -> tuple[dict, list]:
    """The rules applied row by row, written independently of the vectorized predictor."""
    running = {e.id: e for e in df.running_experiments()}
    seen, rows = set(), []
    for r in events.to_dict("records"):
        k = (r["entity_id"] if pd.notna(r["entity_id"]) else None, r["uuid"], r["timestamp"])
        rows.append((r, k in seen))
        seen.add(k)
    first: dict = {}
    for r, dup in rows:  # frame order, so the first of equal timestamps stays
        if dup or r["kind"] != "impression":
            continue
        exp = running.get(r["experiment_id"])
        if exp is None or r["variation_id"] not in {v.id for v in exp.variations}:
            continue
        cur = first.get((r["visitor_id"], exp.id))
        if cur is None or r["timestamp"] < cur[0]:
            first[(r["visitor_id"], exp.id)] = (r["timestamp"], r["variation_id"])
    counts: dict = {}
    for (v, e), (_, var) in first.items():
        keys = [k for k, ev in df.events.items() if e in ev.experiment_ids] or [None]
        for key in keys:
            counts.setdefault((e, var, key), [set(), set(), 0, 0])[0].add(v)
    not_counted: list = []
    decided_visitors = {v for v, _ in first}
    for r, dup in rows:
        if r["kind"] != "conversion":
            continue
        u = r["uuid"]
        if dup:
            not_counted.append((u, None, "duplicate"))
            continue
        ev = df.events.get(r["key"])
        if ev is None:
            not_counted.append((u, None, "key_not_in_datafile"))
            continue
        exps = sorted(x for x in ev.experiment_ids if x in running)
        mine = [x for x in exps if (r["visitor_id"], x) in first]
        for x in mine:
            ts, var = first[(r["visitor_id"], x)]
            if ts < r["timestamp"]:
                c = counts.setdefault((x, var, r["key"]), [set(), set(), 0, 0])
                c[1].add(r["visitor_id"])
                c[2] += 1
                c[3] += 0 if pd.isna(r["revenue"]) else int(r["revenue"])
            else:
                not_counted.append((u, x, "decision_after_conversion"))
        if not mine:
            if exps and r["visitor_id"] not in decided_visitors:
                not_counted.extend((u, x, "no_decision") for x in exps)
            else:
                not_counted.append((u, None, "key_not_in_experiment"))
    return {k: (len(a), len(b), n, rev) for k, (a, b, n, rev) in counts.items()}, not_counted


VISITORS = ["a", "b", "c"]
EXPERIMENTS = [(CHECKOUT, CONTROL), (CHECKOUT, NEW), (PRICING, PRICING_A), (GROUP1, G1_A), (OLD_BANNER, BANNER_OFF),
               (GROUP2, "70013"), (CHECKOUT, PRICING_A)]
KEYS = ["purchase", "add_to_cart", "signup", "form_submit", "nope"]

event_rows = st.one_of(
    st.builds(lambda v, ev, ts, u: imp(v, ev[0], ev[1], ts, uuid=f"i{u}"),
              st.sampled_from(VISITORS), st.sampled_from(EXPERIMENTS), st.integers(0, 6), st.integers(0, 3)),
    st.builds(lambda v, k, ts, rev, u: conv(v, k, ts, rev, uuid=f"c{u}"),
              st.sampled_from(VISITORS), st.sampled_from(KEYS), st.integers(0, 6),
              st.one_of(st.none(), st.integers(0, 1000)), st.integers(0, 3)),
)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(event_rows, max_size=40))
def test_matches_brute_force_reference(rows):
    events = frame(*rows)
    pred = predict(events, DF)
    want_counts, want_nc = reference(events, DF)
    got = {
        (r.experiment_id, r.variation_id, None if pd.isna(r.event_key) else r.event_key):
            (r.visitors, r.unique_conversions, r.total_conversions, r.revenue)
        for r in pred.counts.itertuples()
    }
    nonzero = {k: v for k, v in got.items() if any(v)}
    assert nonzero == {k: v for k, v in want_counts.items() if any(v)}
    # the not-counted list, in conversion order, experiments in id order
    assert reasons(pred) == want_nc
