"""Visitor id policies, stitching (whole and chunked), the multi-anonymous count."""

from __future__ import annotations

import uuid

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from toolkit.contracts import Reason
from toolkit.identity import POLICIES, Identity, IdentityGraph, event_uuids, resolve_visitor_ids
from toolkit.mapping import map_events

from .builders import frame, row

# one person browsing as a1, logging in (identify a1 -> u1), later on a new device a2 -> u1;
# a second person never logs in (a3); an event with no id at all.
ROWS = [
    row("Product Added", anonymous_id="a1", timestamp=1),
    row(None, type="identify", anonymous_id="a1", user_id="u1", timestamp=2),
    row("Order Completed", anonymous_id="a1", user_id="u1", timestamp=3),
    row("Product Added", anonymous_id="a2", timestamp=4),
    row(None, type="identify", anonymous_id="a2", user_id="u1", timestamp=5),
    row("signup", anonymous_id="a3", timestamp=6),
    row("signup", anonymous_id=None, user_id=None, timestamp=7),
    row("signup", anonymous_id="  ", user_id="", timestamp=8),  # blanks are no id
]


@pytest.mark.parametrize(("policy", "expected"), [
    ("user_or_anonymous", ["a1", "u1", "u1", "a2", "u1", "a3", None, None]),
    ("anonymous", ["a1", "a1", "a1", "a2", "a2", "a3", None, None]),
    ("user", [None, "u1", "u1", None, "u1", None, None, None]),
    ("stitched", ["u1", "u1", "u1", "u1", "u1", "a3", None, None]),
])
def test_policies(policy, expected):
    got = resolve_visitor_ids(frame(ROWS), policy)
    assert [None if pd.isna(v) else v for v in got] == expected


def test_stitched_chunked_equals_whole():
    whole = IdentityGraph()
    whole.add(frame(ROWS))
    chunked = IdentityGraph()
    for i in range(0, len(ROWS), 3):
        chunked.add(frame(ROWS[i:i + 3]))
    assert chunked.links() == whole.links() == {"a1": "u1", "a2": "u1"}
    # a chunk mapped alone still stitches with links from the first pass
    late_chunk = frame(ROWS[3:4])
    assert resolve_visitor_ids(late_chunk, whole.resolver("stitched")).tolist() == ["u1"]
    assert resolve_visitor_ids(late_chunk, "stitched").tolist() == ["a2"]  # no links in this chunk alone


def test_multi_anonymous_counts_people_not_pairs():
    g = IdentityGraph()
    g.add(frame(ROWS))
    g.add(frame([row(None, type="identify", anonymous_id="b1", user_id="u2", timestamp=1),
                 row("signup", anonymous_id="b1", user_id="u2", timestamp=2)]))
    assert g.multi_anonymous() == 1  # u1 (a1, a2); u2 has one anonymous id however many rows


def test_shared_device_goes_to_the_first_user():
    g = IdentityGraph()
    g.add(frame([row(None, type="identify", anonymous_id="d", user_id="later", timestamp=50),
                 row(None, type="identify", anonymous_id="d", user_id="first", timestamp=10)]))
    assert g.links() == {"d": "first"}


def test_missing_visitor_id_is_quarantined_per_policy(datafile, blueprint):
    rows = [r for r in ROWS if r["type"] == "track"]
    for policy in POLICIES:
        res = map_events(frame(rows), datafile, blueprint, identity=policy)
        expected = resolve_visitor_ids(frame(rows), policy).isna().sum()
        got = (res.quarantine["reason"] == Reason.MISSING_VISITOR_ID).sum()
        assert got == expected, policy
        assert policy in res.quarantine["detail"].iloc[0]


def test_unknown_policy():
    with pytest.raises(ValueError, match="use one of"):
        Identity("cookies")


def test_event_uuids_without_id_depend_on_content_only():
    a = row("signup", event_id=None, anonymous_id="x", timestamp=5, source_row=1)
    b = dict(a, source_row=99)  # same event, other position in another cut of the export
    c = dict(a, timestamp=6)
    u = event_uuids(frame([a, b, c])).tolist()
    assert u[0] == u[1] != u[2]


@given(name=st.text(max_size=80))
def test_fast_uuid5_equals_the_standard_library(name):
    from toolkit.identity import NAMESPACE, _uuid5

    assert _uuid5(NAMESPACE, name) == str(uuid.uuid5(NAMESPACE, name))


@given(names=st.lists(st.text(max_size=40), max_size=20))
def test_bulk_uuid5_equals_the_standard_library(names):
    from toolkit.identity import NAMESPACE, uuid5_array

    assert uuid5_array(NAMESPACE, names).to_pylist() == [str(uuid.uuid5(NAMESPACE, n)) for n in names]
