"""Event API request bodies from mapped Optimizely events (the EVENTS contract).

A body has exactly the shape ``optimizely-sdk``'s ``EventFactory.create_log_event`` builds
(``optimizely/event/event_factory.py`` and ``payload.py``): the same field names, nesting, types
and key order; ``revenue``, ``value`` and ``tags`` are left out when null, ``decisions`` only on
impression snapshots, ``$opt_bot_filtering`` is added to each visitor's attributes when the
datafile sets ``botFiltering``. Two differences, on purpose: the uuid and timestamp come from the
source event (so replays dedupe at Optimizely) and ``client_name`` / ``client_version`` name
this toolkit. Where the SDK sends one visitor per event, a body here carries one visitor entry per
visitor id with all of that visitor's snapshots: impressions first, then by timestamp.

Bodies are at most ``max_bytes`` (default 3.5 MB minus a safety margin). A visitor whose
events do not fit in one body is split over several bodies; an event that alone exceeds the cap
cannot be sent and is handed to ``on_reject`` with :attr:`Reason.EVENT_TOO_LARGE`.

Deterministic: the same events (in any row order) give the same bodies, byte for byte, so
``batch_id`` (a hash of the body) is stable across runs.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .contracts import CLIENT_NAME, EVENTS, Body, Reason, conform
from .snapshots import json_strings, snapshot_json, visitor_entry, visitor_pieces

__all__ = [
    "DEFAULT_MAX_BYTES",
    "EVENT_API_LIMIT",
    "BOT_FILTERING_KEY",
    "BodyHeader",
    "iter_bodies",
    "body_order",
    "body_order_of",
    "event_body_sizes",
    "gc_paused",
]

log = logging.getLogger(__name__)

EVENT_API_LIMIT = 3_500_000  # the Event API's documented maximum body size (3.5 MB)
DEFAULT_MAX_BYTES = EVENT_API_LIMIT - 100_000  # safety margin under the documented limit
BOT_FILTERING_KEY = "$opt_bot_filtering"

# on_reject(rows: EVENTS frame, reason, detail) receives events that cannot be sent.
RejectHandler = Callable[[pd.DataFrame, Reason, str], None]


@dataclass(frozen=True)
class BodyHeader:
    """The top-level fields of every body (what the SDK takes from the ProjectConfig)."""

    account_id: str
    project_id: str
    revision: str
    anonymize_ip: bool = False
    bot_filtering: bool | None = None
    client_name: str = CLIENT_NAME
    client_version: str = ""

    def prefix(self) -> bytes:
        from . import __version__

        head = {
            "account_id": str(self.account_id),
            "project_id": str(self.project_id),
            "revision": str(self.revision),
            "client_name": self.client_name,
            "client_version": self.client_version or __version__,
            "anonymize_ip": bool(self.anonymize_ip),
            "enrich_decisions": True,
        }
        return orjson.dumps(head)[:-1] + b',"visitors":['

    def attributes(self) -> list[dict]:
        if not isinstance(self.bot_filtering, bool):
            return []
        return [{"entity_id": BOT_FILTERING_KEY, "key": BOT_FILTERING_KEY, "type": "custom",
                 "value": self.bot_filtering}]


_SUFFIX = b"]}"


def body_order(events: pd.DataFrame) -> np.ndarray:
    """Row positions in body order: visitors by id, each visitor's impressions first, then by
    timestamp, then by uuid (a total order, so the result does not depend on the input order).
    Null visitor ids and uuids sort first; texts compare by code point (Arrow's stable sort)."""
    if len(events) == 0:
        return np.arange(0, dtype=np.int64)
    return body_order_of(
        pa.array(events["visitor_id"].astype("string").array),
        (events["kind"].astype("string") != "impression").fillna(True).to_numpy(dtype=np.int8),
        events["timestamp"].astype("Int64").fillna(0).to_numpy(dtype=np.int64),
        pa.array(events["uuid"].astype("string").array),
    )


def body_order_of(visitor: pa.Array, conversion: np.ndarray, ts: np.ndarray, uuid: pa.Array, *,
                  check: bool = True) -> np.ndarray:
    """:func:`body_order` of the columns themselves: visitor ids and uuids (Arrow strings), whether
    each row is a conversion (int8: 0 impression, 1 conversion) and its timestamp (int64, nulls as 0).
    ``check=False``: sort without first looking whether the rows are in order already (rows in
    export order seldom are)."""
    n = len(ts)
    table = pa.table({"visitor": visitor, "kind": pa.array(conversion), "ts": pa.array(ts), "uuid": uuid})
    if check and _in_order(table):  # e.g. mapped with body_order=True: no sort, no reordering
        return np.arange(n, dtype=np.int64)
    keys = [(c, "ascending", "at_start") for c in table.column_names]
    return pc.sort_indices(table, sort_keys=keys).to_numpy().astype(np.int64)


def _in_order(table: pa.Table) -> bool:
    """Whether the rows of ``table`` (visitor, kind, ts, uuid) are already in body order: each row
    not after the next by the sort keys (texts compared byte by byte, which is code point order,
    as the sort does). Texts with nulls are left to the sort."""
    n = table.num_rows
    if n < 2:
        return True
    v, u = (table[c].combine_chunks() for c in ("visitor", "uuid"))
    if v.null_count or u.null_count:
        return False
    k, t = (table[c].to_numpy() for c in ("kind", "ts"))
    head, tail = slice(0, n - 1), slice(1, n)

    def cmp(fn, arr: pa.Array) -> np.ndarray:
        return fn(arr.slice(1), arr.slice(0, n - 1)).to_numpy(zero_copy_only=False)

    ok = cmp(pc.greater_equal, u)
    ok = (t[tail] > t[head]) | ((t[tail] == t[head]) & ok)
    ok = (k[tail] > k[head]) | ((k[tail] == k[head]) & ok)
    ok = cmp(pc.greater, v) | (cmp(pc.equal, v) & ok)
    return bool(ok.all())


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many small dicts (no cycles are made).

    Building a million dicts that stay alive triggers repeated full collections over every live
    object: measured 8x slower than with the collector paused. The previous state is restored.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def event_body_sizes(events: pd.DataFrame, header: BodyHeader) -> np.ndarray:
    """The exact size in bytes of a body holding each event alone (per row, input order)."""
    events = conform(events, EVENTS)
    fixed = len(header.prefix()) + len(_SUFFIX)
    attrs = orjson.dumps(header.attributes())
    snaps = pc.binary_length(snapshot_json(events)).to_numpy(zero_copy_only=False).astype(np.int64)
    vids = pc.binary_length(json_strings(pc.fill_null(pa.array(events["visitor_id"].array), "")))
    entry_overhead = len(visitor_entry("", [], attrs)) - 2  # without the visitor id's JSON text ("")
    return fixed + entry_overhead + snaps + vids.to_numpy(zero_copy_only=False).astype(np.int64)


SEGMENT_ROWS = 100_000  # rows encoded at a time: bounds the memory of the encoded pieces


def iter_bodies(
    events: pd.DataFrame,
    *,
    account_id: str,
    project_id: str,
    revision: str,
    anonymize_ip: bool = False,
    bot_filtering: bool | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    client_version: str = "",
    on_reject: RejectHandler | None = None,
) -> Iterator[Body]:
    """Group EVENTS rows by visitor into Event API bodies of at most ``max_bytes`` bytes.

    ``bot_filtering`` is the datafile's ``botFiltering`` (``Datafile.bot_filtering``): when it is a
    bool, every visitor carries the ``$opt_bot_filtering`` attribute as the SDK does. Events that
    cannot be sent (alone over the cap, or a conversion with no ``entity_id``) go to ``on_reject``;
    without a handler they are logged as errors.

    Packing is greedy in body order: a visitor's entry goes into the open body if it fits, else the
    body is closed first; a visitor too big for any body is split snapshot by snapshot. The events
    are encoded a segment at a time (:mod:`toolkit.snapshots`) and the open body's content is
    a list of slices of the encoded bytes, so bodies are cut with cumulative sizes, not built
    visitor by visitor.
    """
    header = BodyHeader(str(account_id), str(project_id), str(revision), bool(anonymize_ip), bot_filtering,
                        client_version=client_version)
    prefix = header.prefix()
    if len(prefix) + len(_SUFFIX) >= max_bytes:
        raise ValueError(f"max_bytes={max_bytes} is smaller than an empty body ({len(prefix) + 2} bytes)")

    def reject(rows: pd.DataFrame, reason: Reason, detail: str) -> None:
        if on_reject is not None:
            on_reject(rows, reason, detail)
        else:
            log.error("%d event(s) not sent (%s): %s; first uuid %s", len(rows), reason.value, detail,
                      rows["uuid"].iloc[0] if len(rows) else "-")

    events = conform(events, EVENTS)
    if len(events) == 0:
        return
    no_entity = (events["kind"] != "impression").fillna(True) & events["entity_id"].isna()
    if bool(no_entity.any()):
        reject(events[no_entity.to_numpy()], Reason.KEY_NOT_IN_DATAFILE,
               "conversion with no datafile event id (entity_id): the key is not in the datafile")
        events = events[~no_entity.to_numpy()]
    order = body_order(events)
    if len(order) and not (np.diff(order) > 0).all():
        events = events.iloc[order]
    events = events.reset_index(drop=True)
    packer = _Packer(prefix, orjson.dumps(header.attributes()), max_bytes, events)
    vids = pc.fill_null(pa.array(events["visitor_id"].array), "")
    vids = vids.combine_chunks() if isinstance(vids, pa.ChunkedArray) else vids
    for start, end in _segments(vids, SEGMENT_ROWS):
        yield from packer.add(start, end, vids.slice(start, end - start))
    yield from packer.close()
    if packer.too_large:
        reject(events.iloc[packer.too_large].reset_index(drop=True), Reason.EVENT_TOO_LARGE,
               f"one event alone makes a body over the {max_bytes}-byte cap; shrink its tags")


def _segments(vids: pa.Array, size: int) -> Iterator[tuple[int, int]]:
    """[start, end) row ranges of about ``size`` rows that never cut a visitor's run of rows."""
    n, start = len(vids), 0
    while start < n:
        end = min(start + size, n)
        if end < n:  # move the cut to the next visitor boundary
            tail = vids.slice(end - 1)
            change = pc.not_equal(tail.slice(1), tail.slice(0, len(tail) - 1))
            idx = pc.index(change, True).as_py()
            end = n if idx < 0 else end + idx
        yield start, end
        start = end


class _Packer:
    """Greedy packing of encoded visitor entries into bodies (state carried across segments).

    The open body is a list of byte slices, each one or more whole visitor entries preceded by a
    comma (the first comma is dropped when the body is written); ``size`` is the exact size of the
    body if it were closed now.
    """

    def __init__(self, prefix: bytes, attrs: bytes, max_bytes: int, events: pd.DataFrame) -> None:
        self.prefix, self.attrs, self.max_bytes, self.events = prefix, attrs, max_bytes, events
        self.fixed = len(prefix) + len(_SUFFIX)
        self.too_large: list[int] = []
        self._reset()

    def _reset(self) -> None:
        self.parts: list[memoryview | bytes] = []
        self.rows: list[tuple[int, int] | list[int]] = []
        self.size = self.fixed
        self.n_visitors = 0

    def _flush(self) -> Body:
        first = self.parts[0][1:]
        data = b"".join([self.prefix, first, *self.parts[1:], _SUFFIX])
        positions = [np.arange(*r) if isinstance(r, tuple) else np.asarray(r, dtype=np.int64) for r in self.rows]
        rows = np.concatenate(positions)
        if rows[-1] - rows[0] + 1 == len(rows):  # one run of rows (always, unless a visitor was split)
            frame = self.events.iloc[int(rows[0]):int(rows[-1]) + 1]
        else:
            frame = self.events.iloc[rows]
        body = Body(batch_id=hashlib.sha256(data).hexdigest()[:16], data=data,
                    events=frame.reset_index(drop=True), n_visitors=self.n_visitors)
        self._reset()
        return body

    def add(self, start: int, end: int, vids: pa.Array) -> Iterator[Body]:
        """Pack the visitors of rows [start, end) (whole visitors only)."""
        snaps = snapshot_json(self.events.iloc[start:end])
        pieces = visitor_pieces(snaps, vids, self.attrs)
        offsets = np.frombuffer(pieces.buffers()[1], dtype=np.int64)[pieces.offset:pieces.offset + len(pieces) + 1]
        data = memoryview(pieces.buffers()[2])  # piece i is data[offsets[i]:offsets[i + 1]]
        n = end - start
        change = np.ones(n + 1, dtype=bool)
        if n > 1:
            change[1:n] = pc.not_equal(vids.slice(1), vids.slice(0, n - 1)).to_numpy(zero_copy_only=False)
        vstart = np.flatnonzero(change)  # visitor k holds rows vstart[k]:vstart[k+1]; the last is n
        cum = offsets[vstart] - offsets[0]  # bytes before visitor k (pieces with their commas)
        entry = np.diff(cum)  # each visitor's entry plus its leading comma
        oversize = np.flatnonzero(self.fixed + entry - 1 > self.max_bytes)
        nv, k = len(entry), 0
        while k < nv:
            nxt = oversize[np.searchsorted(oversize, k)] if len(oversize) and oversize[-1] >= k else nv
            if nxt == k:
                yield from self._split(start, vstart[k], vstart[k + 1], snaps, vids)
                k += 1
                continue
            base = self.size if self.parts else self.fixed - 1
            b = int(np.searchsorted(cum, cum[k] + self.max_bytes - base, side="right")) - 1
            b = min(b, nxt)
            if b <= k:  # the next visitor does not fit in the open body
                yield self._flush()
                continue
            lo, hi = int(offsets[vstart[k]]), int(offsets[vstart[b]])
            self.parts.append(data[lo:hi])
            self.rows.append((start + int(vstart[k]), start + int(vstart[b])))
            self.size = base + hi - lo
            self.n_visitors += b - k
            k = b

    def _split(self, start: int, lo: int, hi: int, snaps: pa.Array, vids: pa.Array) -> Iterator[Body]:
        """One visitor too big for a body, snapshot by snapshot (rare; events alone over the cap
        are set aside in ``too_large``)."""
        vid = vids[lo].as_py()
        overhead = len(visitor_entry(vid, [], self.attrs))
        pending: list[bytes] = []
        pending_rows: list[int] = []
        pending_len = 0
        for i in range(lo, hi):
            snap = snaps[i].as_py().encode()
            if self.fixed + overhead + len(snap) > self.max_bytes:
                self.too_large.append(start + i)
                continue
            entry_size = overhead + pending_len + (1 if pending else 0) + len(snap)
            if self.size + (1 if self.parts else 0) + entry_size > self.max_bytes:
                if pending:  # the open body is full: close this visitor's part in it, then the body
                    self._append_entry(vid, pending, pending_rows)
                    pending, pending_rows, pending_len = [], [], 0
                yield self._flush()
            pending_len += len(snap) + (1 if pending else 0)
            pending.append(snap)
            pending_rows.append(start + i)
        if pending:
            self._append_entry(vid, pending, pending_rows)

    def _append_entry(self, vid: str, snaps: list[bytes], rows: list[int]) -> None:
        entry = visitor_entry(vid, snaps, self.attrs)
        self.size += len(entry) + (1 if self.parts else 0)
        self.parts.append(b"," + entry)
        self.rows.append(rows)
        self.n_visitors += 1

    def close(self) -> Iterator[Body]:
        if self.parts:
            yield self._flush()
