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
from collections.abc import Iterable, Mapping
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
    "resolve_visitor_ids",
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


def uuid5_array(namespace: uuid.UUID, names: Iterable[str]) -> pa.LargeStringArray:
    """``[str(uuid.uuid5(namespace, name)) for name in names]`` as an Arrow string array.

    Only the SHA-1 runs per name; the version/variant bits and the hex formatting are done on all
    digests at once with numpy (the result is checked against :func:`uuid.uuid5` in the tests).
    """
    prefix, sha1 = namespace.bytes, hashlib.sha1
    digests = b"".join([sha1(prefix + s.encode("utf-8"), usedforsecurity=False).digest() for s in names])
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


def derived_uuids(bases: Iterable[str], qualifiers: Iterable[str]) -> pa.LargeStringArray:
    """:func:`derived_uuid` of each (base, qualifier) pair, as an Arrow string array."""
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


def _blank_to_na(s: pd.Series) -> pd.Series:
    s = s.astype("string").str.strip()
    return s.mask(s == "")


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
    visitor_ids: pd.Series | None = None  # distinct visitor ids of the chunk's mapped events


class IdentityGraph:
    """Collects anonymous id <-> user id pairs (and the distinct visitor ids) over chunks.

    ``add(frame)`` in one process, or ``part = IdentityGraph.extract(frame)`` where the chunk is
    and ``graph.merge(part)`` where the graph is: both give the same graph.
    """

    def __init__(self) -> None:
        self._parts: list[pd.DataFrame] = []
        self._visitors: set[str] = set()

    @staticmethod
    def extract(frame: pd.DataFrame, visitor_ids: pd.Series | None = None) -> GraphPart:
        """The part of the graph one chunk of NORMALIZED rows gives (``visitor_ids``: the visitor
        ids of that chunk's mapped events, counted by :meth:`visitors`)."""
        anon, user = _blank_to_na(frame["anonymous_id"]), _blank_to_na(frame["user_id"])
        both = anon.notna() & user.notna()
        ts = frame["timestamp"].astype("Int64")[both].fillna(pd.NA)
        part = pd.DataFrame({"anonymous_id": anon[both], "user_id": user[both], "ts": ts})
        if len(part):
            part = part.groupby(["anonymous_id", "user_id"], as_index=False, dropna=False)["ts"].min()
        vids = None
        if visitor_ids is not None:
            vids = pd.Series(visitor_ids.dropna().unique(), dtype="string")
        return GraphPart(part.reset_index(drop=True), vids)

    def merge(self, part: GraphPart) -> None:
        if part.visitor_ids is not None:
            self._visitors.update(part.visitor_ids.tolist())
        if not len(part.pairs):
            return
        self._parts.append(part.pairs)
        if len(self._parts) > 16:  # keep memory bounded by the number of distinct pairs
            self._parts = [self._pairs()]

    def add(self, frame: pd.DataFrame, visitor_ids: pd.Series | None = None) -> None:
        self.merge(self.extract(frame, visitor_ids))

    def visitors(self) -> int:
        """How many distinct visitor ids the merged parts carried."""
        return len(self._visitors)

    def _pairs(self) -> pd.DataFrame:
        if not self._parts:
            return pd.DataFrame({"anonymous_id": pd.Series(dtype="string"), "user_id": pd.Series(dtype="string"),
                                 "ts": pd.Series(dtype="Int64")})
        allp = pd.concat(self._parts, ignore_index=True)
        return allp.groupby(["anonymous_id", "user_id"], as_index=False, dropna=False)["ts"].min()

    def multi_anonymous(self) -> int:
        """How many user ids were seen with more than one anonymous id."""
        pairs = self._pairs()
        if pairs.empty:
            return 0
        return int((pairs.groupby("user_id")["anonymous_id"].nunique() > 1).sum())

    def links(self) -> dict[str, str]:
        """anonymous id -> user id; the earliest link (then the smaller user id) wins."""
        pairs = self._pairs()
        if pairs.empty:
            return {}
        pairs = pairs.assign(ts=pairs["ts"].fillna(2**62)).sort_values(["anonymous_id", "ts", "user_id"])
        first = pairs.drop_duplicates("anonymous_id", keep="first")
        return dict(zip(first["anonymous_id"].tolist(), first["user_id"].tolist(), strict=True))

    def resolver(self, policy: str) -> Identity:
        links = self.links() if policy == "stitched" else {}
        return Identity(policy, MappingProxyType(links))


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
        linked = anon.map(ident.links.get, na_action="ignore").astype("string")
        return user.fillna(linked).fillna(anon)
    return user.fillna(anon)
