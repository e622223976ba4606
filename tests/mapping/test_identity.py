"""Visitor id policies, stitching (whole and chunked), the multi-anonymous count."""

from __future__ import annotations

import pickle
import uuid
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit import identity as identity_module
from toolkit.contracts import Reason
from toolkit.identity import (
    POLICIES,
    GraphPart,
    Identity,
    IdentityGraph,
    LinkTable,
    event_uuids,
    resolve_visitor_ids,
)
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


_ID = st.one_of(st.none(), st.sampled_from(["", " ", "a", "b", "c", "é", "a b", "B"]))
_ROW = st.fixed_dictionaries({"anonymous_id": _ID, "user_id": _ID,
                              "timestamp": st.one_of(st.none(), st.integers(0, 5))})


def _reference(rows: list[dict], policy: str) -> tuple[dict, int, int]:
    """links, multi_anonymous, visitors of ``rows`` computed the plain way (no pandas, no hashes)."""
    pairs: dict[tuple[str, str], int] = {}
    for r in rows:
        a, u = (r["anonymous_id"] or "").strip(), (r["user_id"] or "").strip()
        if a and u:
            ts = 2**62 if r["timestamp"] is None else r["timestamp"]
            pairs[a, u] = min(pairs.get((a, u), ts), ts)
    best: dict[str, tuple[int, str]] = {}
    anons: dict[str, set[str]] = defaultdict(set)
    for (a, u), ts in pairs.items():
        best[a] = min(best.get(a, (ts, u)), (ts, u))
        anons[u].add(a)
    visitors = {v for v in resolve_visitor_ids(frame(rows), policy) if not pd.isna(v)} if rows else set()
    return {a: u for a, (_, u) in best.items()}, sum(len(s) > 1 for s in anons.values()), len(visitors)


def _graph(parts) -> IdentityGraph:
    g = IdentityGraph()
    for part in parts:
        g.merge(part)
    return g


def _ids(f, ident) -> list:
    return [None if pd.isna(v) else v for v in resolve_visitor_ids(f, ident)]


def _summary(g: IdentityGraph) -> tuple[dict, int, int]:
    return g.links(), g.multi_anonymous(), g.visitors()


@settings(deadline=None, max_examples=60)  # a few pandas frames per example: slow on a busy machine
@given(rows=st.lists(_ROW, max_size=30), cuts=st.lists(st.integers(0, 30), max_size=4),
       policy=st.sampled_from(POLICIES))
def test_graph_chunked_equals_whole_equals_reference(rows, cuts, policy):
    rows = [row("e", **r) for r in rows]
    bounds = sorted({0, len(rows), *(c for c in cuts if c <= len(rows))})
    chunks = [frame(rows[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]
    ident: str | Identity = policy
    if policy == "stitched" and rows:  # as the product does: chunks resolved with the first pass's links
        first_pass = IdentityGraph()
        first_pass.add(frame(rows))
        ident = first_pass.resolver("stitched")
    parts = [IdentityGraph.extract(c, resolve_visitor_ids(c, ident)) for c in chunks]
    whole = IdentityGraph()
    if rows:
        whole.add(frame(rows), resolve_visitor_ids(frame(rows), policy))
    chunked = _graph(parts)
    sent = _graph(pickle.loads(pickle.dumps(p)) for p in reversed(parts))  # via worker processes, any order
    assert _summary(chunked) == _summary(whole) == _summary(sent) == _reference(rows, policy)
    if rows:  # the stitched resolver's LinkTable maps like a dict of the links, here and pickled
        f = frame(rows)
        by_dict = _ids(f, Identity("stitched", whole.links()))
        assert _ids(f, whole.resolver("stitched")) == _ids(f, pickle.loads(pickle.dumps(sent.resolver("stitched"))))
        assert _ids(f, whole.resolver("stitched")) == by_dict
    counts = IdentityGraph(links=False)
    for part in parts:
        counts.merge(part)
    assert (counts.multi_anonymous(), counts.visitors()) == _summary(whole)[1:]
    assert list(whole.links()) == sorted(whole.links())  # in anonymous id order, as before


def test_parts_carry_visitor_ids_as_hashes_or_as_strings():
    f = frame(ROWS)
    vids = resolve_visitor_ids(f, "user_or_anonymous")
    part = IdentityGraph.extract(f, vids)
    assert part.visitor_ids.dtype == "uint64" and len(part.visitor_ids) == 4  # a1 u1 a2 a3
    by_hand = GraphPart(part.pairs.iloc[:0], vids)  # the ids themselves, repeated and with NA
    assert _graph([by_hand]).visitors() == _graph([part]).visitors() == 4
    assert _graph([by_hand, part]).visitors() == 4


def test_links_are_exact_and_counts_hashed(monkeypatch):
    """The links compare the ids themselves; the counts compare 64-bit hashes, so two ids that
    share a hash would count once (shown here with a hash that is the same for every id)."""
    monkeypatch.setattr(identity_module, "_FLUSH_ROWS", 1)  # merge the pending links at every part
    f = frame(ROWS)
    honest = _graph([IdentityGraph.extract(f.iloc[i:i + 2], resolve_visitor_ids(f.iloc[i:i + 2]))
                     for i in range(0, len(ROWS), 2)])
    assert _summary(honest) == ({"a1": "u1", "a2": "u1"}, 1, 4)
    monkeypatch.setattr(identity_module, "_hash64", lambda values: np.zeros(len(list(values)), dtype=np.uint64))
    clashing = _graph([IdentityGraph.extract(f, resolve_visitor_ids(f))])
    assert clashing.links() == honest.links()
    assert (clashing.multi_anonymous(), clashing.visitors()) == (0, 1)


def test_link_table_is_exact_when_ids_share_a_hash(monkeypatch):
    g = IdentityGraph()
    g.add(frame(ROWS))
    g.add(frame([row(None, type="identify", anonymous_id="b1", user_id="u2", timestamp=1)]))
    honest = g.resolver("stitched").links
    monkeypatch.setattr(identity_module, "_hash64", lambda values: np.zeros(len(list(values)), dtype=np.uint64))
    clashing = g.resolver("stitched")
    assert isinstance(clashing.links, LinkTable) and clashing.links == honest == g.links()
    assert (clashing.links["a2"], clashing.links["b1"], clashing.links.get("a3")) == ("u1", "u2", None)
    assert _ids(frame(ROWS), clashing) == ["u1", "u1", "u1", "u1", "u1", "a3", None, None]
    assert repr(clashing.links) == "LinkTable(3 links)"  # never the ids
    with pytest.raises(KeyError):
        clashing.links["u1"]


def test_a_counts_only_graph_keeps_no_links():
    g = IdentityGraph(links=False)
    g.add(frame(ROWS))
    assert g.multi_anonymous() == 1 and g.resolver("user").policy == "user"
    with pytest.raises(ValueError, match="links=True"):
        g.resolver("stitched")


def test_same_time_goes_to_the_smaller_user_whatever_the_chunking(monkeypatch):
    monkeypatch.setattr(identity_module, "_FLUSH_ROWS", 1)  # merge the pending links at every part
    rows = [row(None, type="identify", anonymous_id="d", user_id=u, timestamp=t)
            for u, t in [("zed", 9), ("bob", 7), ("amy", 7), ("cat", None), ("é", 7)]]
    for size in (1, 2, 5):
        g = _graph(IdentityGraph.extract(frame(rows[i:i + size])) for i in range(0, len(rows), size))
        assert g.links() == {"d": "amy"}, size


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


def test_derived_uuids_from_arrow_columns_equal_the_one_by_one_form():
    import pyarrow as pa

    from toolkit.identity import derived_uuid, derived_uuids

    bases = [str(uuid.UUID(int=i * 7919)) for i in range(50)] + ["ü-base"]
    quals = [str(50000 + i % 3) for i in range(50)] + ["exp ü"]
    want = [derived_uuid(b, q) for b, q in zip(bases, quals, strict=True)]
    assert derived_uuids(pa.array(bases), pa.array(quals, pa.large_string())).to_pylist() == want
    assert derived_uuids(bases, quals).to_pylist() == want
