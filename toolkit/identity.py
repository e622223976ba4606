"""Ids: which export id becomes Optimizely's ``visitor_id``, and each event's stable uuid.

Policies:

- ``user_or_anonymous`` (default): the user id when the event has one, else the anonymous id.
- ``anonymous``: the anonymous id (the ``_dfid`` cookie) only.
- ``user``: the user id only (anonymous-only events have no visitor id).
- ``stitched``: one visitor id per person. Every row carrying both ids (``identify`` events, and
  events sent after login) links its anonymous id to its user id; an event with only an anonymous
  id takes the linked user id. If one anonymous id was linked to several user ids (a shared
  device), the link seen first (earliest timestamp, then the smaller user id) wins.

An event left without an id is quarantined as ``missing_visitor_id`` by the mapper.

Stitching needs to see the links before mapping: :class:`IdentityGraph` collects them chunk by
chunk (a first pass over the export), then :meth:`IdentityGraph.resolver` gives the
:class:`Identity` the mapper uses for every chunk. The graph also counts the people with more
than one anonymous id (the "visitor count higher than expected" diagnosis).

Event uuids (Optimizely dedupes on entity_id + uuid + timestamp, so a replay must reuse them):
the source id when it is a canonical UUID (8-4-4-4-12 hex, written lower-case), else a UUIDv5 of
the source id in the toolkit's fixed namespace. A row with no source id gets a UUIDv5 of its
canonical content (type, event, user id, anonymous id, timestamp, properties JSON, joined by a
unit separator; the row number is left out so re-cutting the export keeps the uuids): two rows
identical in all of these are the same event and Optimizely stores it once. An impression's uuid
is a UUIDv5 of its source event's uuid and the experiment id.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "POLICIES",
    "Identity",
    "IdentityGraph",
    "GraphPart",
    "LinkTable",
    "resolve_visitor_ids",
    "blank_to_null",
    "as_identity",
    "NAMESPACE",
    "stable_uuid",
    "content_uuid",
    "derived_uuid",
    "event_uuids",
    "uuid5_array",
    "derived_uuids",
]

# Fixed forever: changing it changes every derived uuid and breaks dedup of replays.
NAMESPACE = uuid.UUID("5b0c3a52-9d4e-5f1a-8c57-0d9a3f1e6b21")
_CONTENT_NS = uuid.uuid5(NAMESPACE, "content")
_DERIVED_NS = uuid.uuid5(NAMESPACE, "derived")
_UUID_RE = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_SEP = "\x1f"


def _uuid5(namespace: uuid.UUID, name: str) -> str:
    """``str(uuid.uuid5(namespace, name))`` without building UUID objects (5x faster in bulk)."""
    h = bytearray(hashlib.sha1(namespace.bytes + name.encode("utf-8"), usedforsecurity=False).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x50  # version 5
    h[8] = (h[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = h.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def stable_uuid(source_id: str) -> str:
    """The source id itself if it is a canonical UUID (lower-cased), else its UUIDv5."""
    s = source_id.strip()
    if len(s) == 36 and s.count("-") == 4:
        try:
            return str(uuid.UUID(s))
        except ValueError:
            pass
    return _uuid5(NAMESPACE, s)


def content_uuid(*parts: object) -> str:
    """UUIDv5 of a row's canonical content (for rows with no source id)."""
    return _uuid5(_CONTENT_NS, _SEP.join("" if p is None else str(p) for p in parts))


def derived_uuid(base: str, *parts: object) -> str:
    """UUIDv5 of another uuid plus qualifiers (an impression: source uuid + experiment id)."""
    return _uuid5(_DERIVED_NS, _SEP.join([base, *("" if p is None else str(p) for p in parts)]))


def uuid5_array(namespace: uuid.UUID, names: Iterable[str | bytes]) -> pa.LargeStringArray:
    """``[str(uuid.uuid5(namespace, name)) for name in names]`` as an Arrow string array.

    Only the SHA-1 runs per name; the version/variant bits and the hex formatting are done on all
    digests at once with numpy (the result is checked against :func:`uuid.uuid5` in the tests).
    """
    start = hashlib.sha1(namespace.bytes, usedforsecurity=False)  # each name's hash goes on from a copy
    digests = bytearray()
    for name in names:
        h = start.copy()
        h.update(name if type(name) is bytes else name.encode("utf-8"))
        digests += h.digest()
    n = len(digests) // 20
    raw = np.frombuffer(digests, dtype=np.uint8).reshape(n, 20)[:, :16].copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x50  # version 5
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    hexed = np.frombuffer(raw.tobytes().hex().encode("ascii"), dtype=np.uint8).reshape(n, 32)
    text = np.full((n, 36), ord("-"), dtype=np.uint8)
    for (a, b), (c, d) in zip(_HEX_GROUPS, _TEXT_GROUPS, strict=True):
        text[:, c:d] = hexed[:, a:b]
    offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int64)
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text.tobytes()))


def derived_uuids(bases: Iterable[str] | pa.Array, qualifiers: Iterable[str] | pa.Array) -> pa.LargeStringArray:
    """:func:`derived_uuid` of each (base, qualifier) pair (no nulls), as an Arrow string array; Arrow
    arrays are joined by Arrow (no Python string per row)."""
    if isinstance(bases, pa.Array) and isinstance(qualifiers, pa.Array):
        big = pa.large_string()
        names = pc.binary_join_element_wise(bases.cast(big), qualifiers.cast(big), pa.scalar(_SEP, big))
        return uuid5_array(_DERIVED_NS, names.cast(pa.large_binary()).to_pylist())
    return uuid5_array(_DERIVED_NS, [f"{b}{_SEP}{q}" for b, q in zip(bases, qualifiers, strict=True)])


_HEX_GROUPS = ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))
_TEXT_GROUPS = ((0, 8), (9, 13), (14, 18), (19, 23), (24, 36))


def event_uuids(frame: pd.DataFrame, rows: np.ndarray | None = None) -> pd.Series:
    """The stable uuid of each NORMALIZED row (see the module doc), or of the rows at positions
    ``rows`` only (indexed by those positions); vectorized where it can be."""
    ids = frame["event_id"] if rows is None else frame["event_id"].iloc[rows]
    index = ids.index if rows is None else pd.Index(rows)
    ids = pc.utf8_trim_whitespace(pa.array(ids.astype("string").array))
    ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    ids = pc.if_else(pc.equal(ids, ""), pa.scalar(None, ids.type), ids)
    is_uuid = pc.fill_null(pc.match_substring_regex(ids, f"^(?:{_UUID_RE})$"), False)
    out = pc.if_else(is_uuid, pc.utf8_lower(ids), pa.scalar(None, ids.type))
    other = pc.and_(pc.is_valid(ids), pc.invert(is_uuid)).to_numpy(zero_copy_only=False)
    none = pc.is_null(ids).to_numpy(zero_copy_only=False)
    if other.any() or none.any():
        fill = np.full(len(ids), None, dtype=object)
        if other.any():
            pos = np.flatnonzero(other)
            fill[pos] = uuid5_array(NAMESPACE, ids.take(pa.array(pos)).to_pylist()).to_numpy(zero_copy_only=False)
        if none.any():
            at = np.flatnonzero(none) if rows is None else np.asarray(rows)[none]
            sub = frame[["type", "event", "user_id", "anonymous_id", "timestamp", "properties"]].iloc[at]
            cols = [sub[c].astype(object).where(sub[c].notna(), None).tolist() for c in sub.columns]
            names = [_SEP.join("" if p is None else str(p) for p in row) for row in zip(*cols, strict=True)]
            fill[none] = uuid5_array(_CONTENT_NS, names).to_numpy(zero_copy_only=False)
        out = pc.coalesce(out, pa.array(fill, type=out.type))
    return pd.Series(pd.arrays.ArrowStringArray(out), index=index)


POLICIES = ("user_or_anonymous", "anonymous", "user", "stitched")


def blank_to_null(arr: pa.Array) -> pa.Array:
    """Text with surrounding whitespace removed, null where none is left (pandas' ``str.strip``
    and ``mask``, by the same Arrow kernels without a pandas object per step)."""
    arr = pc.utf8_trim_whitespace(arr)
    return pc.if_else(pc.equal(arr, ""), pa.scalar(None, arr.type), arr)


def _blank_to_na(s: pd.Series) -> pd.Series:
    arr = pa.array(s.astype("string").array)
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    return pd.Series(pd.arrays.ArrowStringArray(blank_to_null(arr)), index=s.index)


@dataclass(frozen=True)
class Identity:
    """A policy plus, for ``stitched``, the anonymous id -> user id links."""

    policy: str = "user_or_anonymous"
    links: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), repr=False)

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"identity policy {self.policy!r}: use one of {', '.join(POLICIES)}")


@dataclass(frozen=True)
class GraphPart:
    """What one chunk adds to an :class:`IdentityGraph`: small and picklable, so a worker process
    can compute it next to the chunk and send only this to the process that holds the graph."""

    pairs: pd.DataFrame  # anonymous_id, user_id, ts (min per pair within the chunk)
    # the chunk's distinct visitor ids: their 64-bit hashes (uint64, what extract gives) or the ids
    visitor_ids: pd.Series | None = None

    @classmethod
    def combine(cls, parts: Sequence[GraphPart]) -> GraphPart:
        """One part for the parts of consecutive pieces of a chunk: what the whole chunk gives
        (pairs grouped again with their earliest time, visitor ids as one sorted distinct set)."""
        if len(parts) == 1:
            return parts[0]
        pairs = [p.pairs for p in parts if len(p.pairs)]
        if len(pairs) > 1:
            joined = pd.concat(pairs, ignore_index=True)
            joined = joined.groupby(["anonymous_id", "user_id"], as_index=False, dropna=False)["ts"].min()
        else:
            joined = pairs[0] if pairs else parts[0].pairs
        vids = [p.visitor_ids for p in parts if p.visitor_ids is not None]
        both = pd.Series(_visitor_hashes(pd.concat(vids, ignore_index=True)), dtype=np.uint64) if vids else None
        return cls(joined.reset_index(drop=True), both)


_NO_TS = 2**62  # a link without a timestamp sorts after every timed one
_FLUSH_ROWS = 1 << 16  # pending links re-sorted into the state once more than this (or a quarter of it)
_EMPTY_U64 = np.zeros(0, dtype=np.uint64)


def _hash64(values: Iterable[str]) -> np.ndarray:
    """64-bit hashes (uint64) of strings: pandas' SipHash with its fixed key, the same in every process."""
    return pd.util.hash_array(np.asarray(values, dtype=object), categorize=False)


def _visitor_hashes(ids: pd.Series) -> np.ndarray:
    """Sorted distinct hashes of a part's ``visitor_ids`` (hashes already, or the ids themselves)."""
    if ids.dtype == np.uint64:
        return np.unique(ids.to_numpy())
    return np.unique(_hash64(ids.dropna().astype("string").unique()))


def _known(into: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each sorted key is or would go in the sorted unique ``into``, and whether it is there."""
    at = np.searchsorted(into, keys)
    known = np.zeros(len(keys), dtype=bool)
    inside = at < len(into)
    known[inside] = into[at[inside]] == keys[inside]
    return at, known


def _strings(s: pd.Series) -> pa.LargeStringArray:
    arr = pa.array(s.astype("string").array)
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    return arr.cast(pa.large_string())


def _first_links(table: pa.Table) -> pa.Table:
    """One row per anonymous id ``a``: the earliest ``ts``, then the smaller user id ``u``; by ``a``."""
    order = pc.sort_indices(table, [("a", "ascending"), ("ts", "ascending"), ("u", "ascending")])
    if len(order) > 1:
        a = table.column("a").take(order).combine_chunks()  # only the keys are copied in full
        first = np.ones(len(a), dtype=bool)
        first[1:] = pc.not_equal(a.slice(1), a.slice(0, len(a) - 1)).to_numpy(zero_copy_only=False)
        del a
        order = order.filter(pa.array(first))
    return table.take(order).combine_chunks()


class LinkTable(Mapping[str, str]):
    """anonymous id -> user id, read-only, as two Arrow string arrays (one link per anonymous id):
    what a ``stitched`` :class:`Identity` carries. A few dozen bytes a link, shared with the graph
    that made it and pickled as two buffers, where a dict of str takes ~200 bytes a link.

    Looked up through the 64-bit hashes of the anonymous ids (built on first use, not pickled),
    then the ids themselves are compared: exact even when two ids share a hash.
    """

    _SLICE = 1 << 16  # ids turned into Python strings at once while hashing the table

    def __init__(self, anonymous_ids: pa.Array, user_ids: pa.Array) -> None:
        if len(anonymous_ids) != len(user_ids):
            raise ValueError(f"LinkTable: {len(anonymous_ids)} anonymous ids for {len(user_ids)} user ids")
        self._anon, self._user = anonymous_ids.cast(pa.large_string()), user_ids.cast(pa.large_string())
        self._index: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self._anon)

    def __iter__(self) -> Iterator[str]:
        return iter(self._anon.to_pylist())

    def __repr__(self) -> str:  # never the ids themselves
        return f"LinkTable({len(self)} links)"

    def __getstate__(self) -> dict:
        return {"_anon": self._anon, "_user": self._user, "_index": None}

    def _hash_index(self) -> tuple[np.ndarray, np.ndarray]:
        """(sorted hashes of the anonymous ids, their rows)."""
        if self._index is None:
            n, step = len(self._anon), self._SLICE
            hashes = np.empty(n, dtype=np.uint64)
            for i in range(0, n, step):
                hashes[i:i + step] = _hash64(self._anon.slice(i, step).to_numpy(zero_copy_only=False))
            rows = np.argsort(hashes, kind="stable")
            self._index = (hashes[rows], rows)
        return self._index

    def _row(self, key: str) -> int:
        hashes, rows = self._hash_index()
        h = _hash64([key])[0]
        for j in range(np.searchsorted(hashes, h, "left"), np.searchsorted(hashes, h, "right")):
            if self._anon[int(rows[j])].as_py() == key:
                return int(rows[j])
        return -1

    def __getitem__(self, key: str) -> str:
        row = self._row(key) if isinstance(key, str) else -1
        if row < 0:
            raise KeyError(key)
        return self._user[row].as_py()

    def user_ids(self, anonymous_ids: pd.Series) -> pd.Series:
        """The linked user id of each anonymous id (NA when it has none), vectorized."""
        keys = anonymous_ids.astype("string")
        at_rows = np.flatnonzero(keys.notna().to_numpy())
        found = np.full(len(keys), -1, dtype=np.int64)
        if len(at_rows) and len(self):
            present = keys.iloc[at_rows]
            hashes, rows = self._hash_index()
            wanted = _hash64(present.array)
            at = np.minimum(np.searchsorted(hashes, wanted), len(hashes) - 1)
            hit = np.flatnonzero(hashes[at] == wanted)
            cand = rows[at[hit]]
            same = pc.equal(self._anon.take(pa.array(cand)), _strings(present.iloc[hit]))
            same = same.to_numpy(zero_copy_only=False)
            found[at_rows[hit[same]]] = cand[same]
            for i in hit[~same]:  # the hash of another id: look further (ids sharing a hash)
                found[at_rows[i]] = self._row(present.iloc[i])
        users = self._user.take(pa.array(found, mask=found < 0))
        return pd.Series(pd.arrays.ArrowStringArray(users), index=anonymous_ids.index)


_LINKS_SCHEMA = pa.schema([("a", pa.large_string()), ("u", pa.large_string()), ("ts", pa.int64())])


class IdentityGraph:
    """Collects anonymous id <-> user id pairs (and the distinct visitor ids) over chunks.

    ``add(frame)`` in one process, or ``part = IdentityGraph.extract(frame)`` where the chunk is
    and ``graph.merge(part)`` where the graph is: both give the same graph, whatever the chunking.

    Memory is a few dozen bytes per distinct id, in numpy / Arrow arrays: the exact strings are
    kept only for the links (per anonymous id that has a user id: the winning user id), the
    counts use 64-bit hashes (sorted, merged without re-sorting). A count is off only if two
    distinct ids share a hash: with n ids the chance is about n**2 / 2**65 (3e-6 for 10 million).
    """

    def __init__(self, *, links: bool = True) -> None:
        """``links=False``: counts only (:meth:`links` and a ``stitched`` resolver refuse), no
        strings kept at all: what mapping under any other policy needs."""
        self._keep_links = links
        self._visitors = _EMPTY_U64  # sorted distinct hashes of the visitor ids
        self._users = _EMPTY_U64  # sorted distinct hashes of the user ids seen with an anonymous id
        self._first_anon = _EMPTY_U64  # per user: the smallest hash of its anonymous ids
        self._multi = np.zeros(0, dtype=bool)  # per user: seen with another anonymous id too
        self._links = _LINKS_SCHEMA.empty_table()  # per anonymous id: the winning link so far, by a
        self._pending: list[pa.Table] = []  # per part: its winning links, not yet in _links
        self._pending_rows = 0

    @staticmethod
    def extract(frame: pd.DataFrame, visitor_ids: pd.Series | None = None, *, pairs: bool = True) -> GraphPart:
        """The part of the graph one chunk of NORMALIZED rows gives (``visitor_ids``: the visitor
        ids of that chunk's mapped events, counted by :meth:`visitors`). ``pairs=False`` leaves
        the id pairs out (they were merged already, e.g. by a first pass over the export)."""
        if not pairs:
            frame = frame.iloc[:0]
        anon, user = _blank_to_na(frame["anonymous_id"]), _blank_to_na(frame["user_id"])
        both = anon.notna() & user.notna()
        ts = frame["timestamp"].astype("Int64")[both].fillna(pd.NA)
        part = pd.DataFrame({"anonymous_id": anon[both], "user_id": user[both], "ts": ts})
        if len(part):
            part = part.groupby(["anonymous_id", "user_id"], as_index=False, dropna=False)["ts"].min()
        vids = None
        if visitor_ids is not None:
            vids = pd.Series(_visitor_hashes(visitor_ids), dtype=np.uint64)
        return GraphPart(part.reset_index(drop=True), vids)

    def merge(self, part: GraphPart) -> None:
        if part.visitor_ids is not None and len(part.visitor_ids):
            new = _visitor_hashes(part.visitor_ids)
            at, known = _known(self._visitors, new)
            self._visitors = np.insert(self._visitors, at[~known], new[~known])
        pairs = part.pairs
        if not len(pairs):
            return
        anon, user = _strings(pairs["anonymous_id"]), _strings(pairs["user_id"])
        self._merge_users(_hash64(user), _hash64(anon))
        if not self._keep_links:
            return
        ts = pairs["ts"].astype("Int64").fillna(_NO_TS).to_numpy(dtype=np.int64)
        first = _first_links(pa.Table.from_arrays([anon, user, pa.array(ts)], schema=_LINKS_SCHEMA))
        self._pending.append(first)
        self._pending_rows += first.num_rows
        if self._pending_rows > max(self._links.num_rows // 4, _FLUSH_ROWS):  # amortized: few re-sorts
            self._flush()

    def _merge_users(self, users: np.ndarray, anons: np.ndarray) -> None:
        """Adds (user hash, anonymous hash) pairs to the per-user state."""
        order = np.lexsort((anons, users))
        users, anons = users[order], anons[order]
        new_user = np.ones(len(users), dtype=bool)
        new_user[1:] = users[1:] != users[:-1]
        new_pair = new_user.copy()
        new_pair[1:] |= anons[1:] != anons[:-1]
        users, anons, new_user = users[new_pair], anons[new_pair], new_user[new_pair]
        starts = np.flatnonzero(new_user)
        users, anons, multi = users[starts], anons[starts], np.diff(np.append(starts, len(new_user))) > 1
        at, known = _known(self._users, users)
        old = at[known]
        self._multi[old] |= multi[known] | (self._first_anon[old] != anons[known])
        self._first_anon[old] = np.minimum(self._first_anon[old], anons[known])
        fresh = ~known
        self._users = np.insert(self._users, at[fresh], users[fresh])
        self._first_anon = np.insert(self._first_anon, at[fresh], anons[fresh])
        self._multi = np.insert(self._multi, at[fresh], multi[fresh])

    def _flush(self) -> None:
        if self._pending:
            self._links = _first_links(pa.concat_tables([self._links, *self._pending]))
            self._pending, self._pending_rows = [], 0
            pa.default_memory_pool().release_unused()

    def add(self, frame: pd.DataFrame, visitor_ids: pd.Series | None = None) -> None:
        self.merge(self.extract(frame, visitor_ids))

    def visitors(self) -> int:
        """How many distinct visitor ids the merged parts carried."""
        return len(self._visitors)

    def multi_anonymous(self) -> int:
        """How many user ids were seen with more than one anonymous id."""
        return int(self._multi.sum())

    def _check_links(self) -> None:
        if not self._keep_links:
            raise ValueError("this IdentityGraph counts only (links=False): build it with links=True to stitch")

    def links(self) -> dict[str, str]:
        """anonymous id -> user id; the earliest link (then the smaller user id) wins."""
        self._check_links()
        self._flush()
        return dict(zip(self._links.column("a").to_pylist(), self._links.column("u").to_pylist(), strict=True))

    def resolver(self, policy: str) -> Identity:
        """The :class:`Identity` of ``policy``; for ``stitched`` its links are a :class:`LinkTable`
        sharing this graph's arrays (no copy)."""
        if policy != "stitched":
            return Identity(policy)
        self._check_links()
        self._flush()
        return Identity(policy, LinkTable(self._links.column("a").combine_chunks(),
                                          self._links.column("u").combine_chunks()))


def as_identity(identity: str | Identity, frame: pd.DataFrame | None = None) -> Identity:
    """An :class:`Identity` from a policy name; ``stitched`` by name links within ``frame`` only."""
    if isinstance(identity, Identity):
        return identity
    if identity == "stitched" and frame is not None:
        graph = IdentityGraph()
        graph.add(frame)
        return graph.resolver("stitched")
    return Identity(identity)


def resolve_visitor_ids(frame: pd.DataFrame, identity: str | Identity = "user_or_anonymous") -> pd.Series:
    """The visitor id of each NORMALIZED row (string, NA when the policy finds none)."""
    ident = as_identity(identity, frame)
    anon, user = _blank_to_na(frame["anonymous_id"]), _blank_to_na(frame["user_id"])
    if ident.policy == "anonymous":
        return anon
    if ident.policy == "user":
        return user
    if ident.policy == "stitched" and ident.links:
        links = ident.links
        if isinstance(links, LinkTable):
            linked = links.user_ids(anon)
        else:
            linked = anon.map(links.get, na_action="ignore").astype("string")
        return user.fillna(linked).fillna(anon)
    both = pc.coalesce(pa.array(user.array), pa.array(anon.array))  # user.fillna(anon), in one kernel
    return pd.Series(pd.arrays.ArrowStringArray(both), index=user.index)
