"""``map_export``: an export file, chunk by chunk, through the loader and :func:`map_events`.

Writes the events and quarantine JSON Lines as it goes, adds the loader's quarantined rows to the
mapper's (in export order), counts everything into a :class:`MapSummary`, and for
``--decisions bucket`` synthesizes impressions at the end with the SDK's bucketer.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from .blueprint import Blueprint, load_blueprint
from .contracts import EVENTS, QUARANTINE, conform, empty
from .datafile import Datafile
from .errors import ExportError
from .events_io import write_events_jsonl, write_quarantine_jsonl
from .identity import GraphPart, Identity, IdentityGraph
from .map_chunk import map_events
from .payload import DEFAULT_MAX_BYTES

__all__ = ["DECISIONS", "MapSummary", "MapOutput", "MappedChunk", "iter_mapped", "map_chunk", "map_export",
           "write_quarantine_jsonl"]

log = logging.getLogger(__name__)
DECISIONS = ("export", "bucket", "none")
MIN_POOL_ROWS = 20_000  # auto workers: exports in smaller chunks are mapped in this process
PIECES = 4  # with a pool, each chunk is mapped as this many pieces (see _pieces)
MIN_PIECE_ROWS = 25_000  # ... when each holds this many rows at least
WRITE_ROWS = 25_000  # events written to the JSON Lines file this many at a time


@dataclass(frozen=True)
class MapSummary:
    """What one ``map_export`` did. ``rows_in == mapped + skipped + quarantined`` always."""

    rows_in: int
    mapped: int
    skipped: int
    quarantined: int
    by_reason: dict[str, int]
    by_skip: dict[str, int]
    warnings: dict[str, int]
    conversions: int
    impressions: int
    synthesized: int  # impressions made by offline bucketing (--decisions bucket)
    visitors: int
    multi_anonymous: int  # people (user ids) seen with more than one anonymous id
    identity: str
    decisions: str
    events_out: str | None = None
    quarantine_out: str | None = None

    @property
    def balanced(self) -> bool:
        return self.rows_in == self.mapped + self.skipped + self.quarantined

    def to_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        """The human summary ``toolkit map`` prints."""
        out = [
            f"rows in       {self.rows_in}",
            f"mapped        {self.mapped}  ({self.conversions} conversions, {self.impressions} impressions"
            + (f" + {self.synthesized} synthesized by bucketing" if self.synthesized else "") + ")",
            f"skipped       {self.skipped}" + "".join(f"\n  {k:<26}{v}" for k, v in sorted(self.by_skip.items())),
            f"quarantined   {self.quarantined}"
            + "".join(f"\n  {k:<26}{v}" for k, v in sorted(self.by_reason.items())),
            f"check         rows in {self.rows_in} == mapped + skipped + quarantined "
            f"{self.mapped + self.skipped + self.quarantined}: {'ok' if self.balanced else 'MISMATCH'}",
            f"visitors      {self.visitors} (identity policy {self.identity})",
            f"multi-anon    {self.multi_anonymous} people with more than one anonymous id"
            + (" (stitch them with --identity stitched)" if self.multi_anonymous and self.identity != "stitched"
               else ""),
        ]
        if self.warnings:
            out.append("warnings" + "".join(f"\n  {k:<26}{v}" for k, v in sorted(self.warnings.items())))
        if self.events_out:
            out.append(f"events        {self.events_out}")
        if self.quarantine_out:
            out.append(f"quarantine    {self.quarantine_out}")
        return out


@dataclass(frozen=True)
class MapOutput:
    events: pd.DataFrame  # EVENTS (empty when keep_frames=False)
    quarantine: pd.DataFrame  # QUARANTINE (loader's and mapper's; empty when keep_frames=False)
    summary: MapSummary


def _chunks(path, fmt, blueprint: Blueprint, chunk_rows: int):
    from .exports import iter_export

    return iter_export(path, fmt=fmt, chunk_rows=chunk_rows, revenue_keys=blueprint.revenue_keys)


def _parts(path, fmt, blueprint: Blueprint, chunk_rows: int):
    """The chunks of :func:`_chunks`, cut but (JSON Lines) not parsed: whoever maps a part loads it,
    so with a pool the parsing runs in the workers and this process only cuts lines."""
    from .exports import iter_export_parts

    return iter_export_parts(path, fmt=fmt, chunk_rows=chunk_rows, revenue_keys=blueprint.revenue_keys)


@dataclass(frozen=True)
class MappedChunk:
    """One chunk of the export, mapped: its events, every quarantined row (the loader's and the
    mapper's, in export order), and what it adds to the identity graph (None when not asked for)."""

    rows_in: int
    events: pd.DataFrame  # EVENTS
    quarantine: pd.DataFrame  # QUARANTINE
    skipped: dict[str, int]
    warnings: dict[str, int]
    graph: GraphPart | None


    @classmethod
    def combine(cls, pieces: list[MappedChunk]) -> MappedChunk:
        """The consecutive pieces of one chunk, mapped apart, as the chunk: the mapping is row by
        row, so this is what mapping the chunk whole gives (tested byte for byte)."""
        if len(pieces) == 1:
            return pieces[0]
        skipped: Counter[str] = Counter()
        warnings: Counter[str] = Counter()
        for p in pieces:
            skipped.update(p.skipped)
            warnings.update(p.warnings)
        return cls(sum(p.rows_in for p in pieces), _concat([p.events for p in pieces]),
                   _concat([p.quarantine for p in pieces]), dict(skipped), dict(warnings),
                   None if pieces[0].graph is None else GraphPart.combine([p.graph for p in pieces]))


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    full = [f for f in frames if len(f)]
    if len(full) == 1:
        return full[0]
    return pd.concat(full, ignore_index=True) if full else frames[0]


def _pieces(chunk_rows: int) -> int:
    """Into how many pieces a pool maps each chunk: with whole chunks, the last ones of an export
    kept one worker busy while the others had nothing left (1M rows in 200k-row chunks on 2
    workers: 3 chunks against 2). Pieces must split a chunk evenly (its rows are cut at piece
    boundaries, then put back together) and stay big enough that per-piece costs do not count."""
    for k in range(PIECES, 1, -1):
        if chunk_rows % k == 0 and chunk_rows // k >= MIN_PIECE_ROWS:
            return k
    return 1


def _whole(pieces: Iterator[MappedChunk], k: int) -> Iterator[MappedChunk]:
    """Mapped pieces, ``k`` at a time, as the chunks they were cut from."""
    if k == 1:
        yield from pieces
        return
    while batch := list(itertools.islice(pieces, k)):
        yield MappedChunk.combine(batch)


def map_chunk(chunk, datafile: Datafile, blueprint: Blueprint, ident: Identity, *, decisions: str,
              max_bytes: int, graph_part: bool = True, body_order: bool = False) -> MappedChunk:
    """Map one loaded chunk (``toolkit.exports`` chunk: ``rows_in``, ``events``, ``quarantine``);
    ``graph_part=False`` leaves out what it adds to the identity graph (its ``graph`` is None);
    ``body_order``: the events in body order (see :func:`toolkit.map_chunk.map_events`)."""
    res = map_events(chunk.events, datafile, blueprint, identity=ident, activations=decisions != "none",
                     max_bytes=max_bytes, body_order=body_order)
    quarantine = res.quarantine
    if len(chunk.quarantine):  # the loader's rejects and ours, in export order
        quarantine = pd.concat([conform(chunk.quarantine, QUARANTINE), res.quarantine], ignore_index=True)
        quarantine = quarantine.sort_values("source_row", kind="stable").reset_index(drop=True)
    # stitched: the first pass merged every link already; the chunk adds only its visitors
    part = IdentityGraph.extract(chunk.events, res.events["visitor_id"], pairs=ident.policy != "stitched") \
        if graph_part else None
    return MappedChunk(int(chunk.rows_in), res.events, quarantine, res.skipped, res.warnings, part)


def iter_mapped(
    path: str | os.PathLike[str],
    datafile: Datafile,
    *,
    blueprint: Blueprint,
    identity: str = "user_or_anonymous",
    decisions: str = "export",
    fmt: str | None = None,
    progress: bool = True,
    chunk_rows: int = 200_000,
    max_bytes: int = DEFAULT_MAX_BYTES,
    graph: IdentityGraph | None = None,
    workers: int | None = None,
    whole: bool = True,
    graph_parts: bool = True,
    body_order: bool = False,
) -> Iterator[MappedChunk]:
    """The export mapped chunk by chunk, in export order (what ``map_export`` and a streaming
    replay consume). ``identity="stitched"`` first reads the export once for the identify links,
    into ``graph`` when given. Each chunk's ``graph`` part is what the chunk adds beyond that (for
    stitched, its visitors only): a caller keeping counts merges every part into the same graph.

    ``workers``: how many processes load and map the chunks (this one only cuts the export into
    parts, see :func:`toolkit.exports.iter_export_parts` and :mod:`toolkit.map_pool`); ``0`` maps
    here; ``None`` (auto) uses one per CPU when the first chunk is full (more follow) and has
    ``MIN_POOL_ROWS`` rows at least, else maps here. A pool maps each chunk in ``PIECES`` pieces
    (when they hold ``MIN_PIECE_ROWS`` rows each), put back together before they are yielded, so
    the workers share the last chunks too. The output does not depend on any of it.

    ``whole=False`` yields those pieces as they are mapped instead of whole chunks, and cuts them
    whatever ``workers`` is (chunks of ``chunk_rows`` rows into ``_pieces(chunk_rows)`` pieces),
    so the frames still depend on ``chunk_rows`` only. A replay takes them: its first bodies go out
    as soon as the first piece is mapped, and after the last one only that piece's bodies are left
    to build and record (with whole chunks of 200k rows, ~1 s of the end of a 1M-row replay ran
    on one core; measured).

    ``graph_parts=False``: no chunk's ``graph`` part (None), for callers that do not count visitors
    (a replay): extracting it cost ~0.5 CPU-s per 1M rows (measured). ``body_order=True``: each
    chunk's events in the order bodies group them, not export order (a replay: building its bodies
    then skips sorting and reordering every column, ~0.7 CPU-s per 1M rows on its critical path)."""
    from .progress import Bar

    if workers is not None and workers < 0:
        raise ExportError(f"workers {workers}: use 0 (map in this process) or more")
    if identity == "stitched":
        links = graph if graph is not None else IdentityGraph()
        for chunk in Bar(_chunks(path, fmt, blueprint, chunk_rows), desc="identity links", unit="chunk",
                          disable=not progress):
            links.merge(IdentityGraph.extract(chunk.events))
        ident = links.resolver("stitched")
    else:
        ident = Identity(identity)
    k = 1 if workers == 0 and whole else _pieces(chunk_rows)
    parts = iter(_parts(path, fmt, blueprint, chunk_rows // k))
    if workers is None:
        parts, workers = _auto_workers(parts, chunk_rows, k)
    if workers == 0:
        mapped = (map_chunk(part.load(), datafile, blueprint, ident, decisions=decisions, max_bytes=max_bytes,
                            graph_part=graph_parts, body_order=body_order) for part in parts)
    else:
        from .map_pool import map_chunks

        # as many chunks ahead as without pieces (the pool's default counts items: here, pieces)
        mapped = map_chunks(parts, datafile, blueprint, ident, decisions=decisions, max_bytes=max_bytes,
                            workers=workers, in_flight=k * (2 * workers + 1), graph_parts=graph_parts,
                            body_order=body_order)
    yield from _whole(mapped, k) if whole else mapped


def _auto_workers(parts: Iterator, chunk_rows: int, k: int) -> tuple[Iterator, int]:
    """:func:`toolkit.map_pool.auto_workers` when the first chunk (its ``k`` pieces) is full (more
    follow, most likely) and has ``MIN_POOL_ROWS`` rows at least (below that, starting processes
    costs more than it saves); else 0. Reads the first chunk only (the workers start on it while
    the second is read) and gives it back in front of the rest. A JSON Lines file cut in byte
    ranges is judged by its first piece and its size, so the workers start after one piece is cut,
    not ``k`` (~0.2 s sooner for 200k-row chunks, measured)."""
    from .map_pool import auto_workers

    threshold = max(chunk_rows, MIN_POOL_ROWS)
    head = list(itertools.islice(parts, 1))
    estimate = head[0].file_rows_estimate() if k > 1 and head and head[0].rows_in == chunk_rows // k else None
    if estimate is not None and estimate >= 1.25 * threshold:  # clearly big: no need to cut the rest first
        n = auto_workers()
        log.debug("auto workers: %d (an export of ~%d rows, by its first piece)", n, estimate)
        return itertools.chain(head, parts), n
    head += itertools.islice(parts, k - 1)
    big = sum(p.rows_in for p in head) >= threshold
    n = auto_workers() if big else 0
    log.debug("auto workers: %d (%s)", n, "export in chunks" if big else "small export, mapped here")
    return itertools.chain(head, parts), n


def _append_in_slices(write, frame: pd.DataFrame, path, rows: int = WRITE_ROWS) -> None:
    """``write(frame, path, append=True)`` a slice at a time: the writer makes a Python dict per row,
    so a whole 200k-row chunk at once peaked ~200 MB higher (measured); the bytes are the same."""
    for start in range(0, len(frame), rows):
        write(frame.iloc[start:start + rows], path, append=True)


def map_export(
    path: str | os.PathLike[str],
    datafile: Datafile,
    *,
    blueprint: Blueprint | None = None,
    identity: str = "user_or_anonymous",
    decisions: str = "export",
    fmt: str | None = None,
    progress: bool = True,
    events_out: str | os.PathLike[str] | None = None,
    quarantine_out: str | os.PathLike[str] | None = None,
    chunk_rows: int = 200_000,
    max_bytes: int = DEFAULT_MAX_BYTES,
    keep_frames: bool = True,
    workers: int | None = None,
) -> MapOutput:
    """Load an export chunk by chunk, map it, write events / quarantine JSON Lines.

    ``decisions``: ``export`` sends the export's activation events as impressions; ``bucket``
    also synthesizes impressions with the SDK's bucketer for converting visitors
    (:func:`toolkit.bucketing.bucket_impressions`, on all mapped events once at the end, so
    those events are kept in memory); ``none`` sends conversions only. ``identity="stitched"``
    reads the export twice (a first pass collects the identify links). With
    ``keep_frames=False`` the frames are only written, not returned (memory stays flat).
    ``workers``: processes that map the chunks (see :func:`iter_mapped`; None = auto).
    """
    from .identity import POLICIES
    from .progress import Bar

    if identity not in POLICIES:
        raise ExportError(f"identity policy {identity!r}: use one of {', '.join(POLICIES)}")
    if decisions not in DECISIONS:
        raise ExportError(f"decisions {decisions!r}: use one of {', '.join(DECISIONS)}")
    blueprint = blueprint or load_blueprint()
    for out_path in (events_out, quarantine_out):
        if out_path is not None:
            Path(out_path).parent.mkdir(parents=True, exist_ok=True)
            Path(out_path).write_bytes(b"")  # truncate: each run writes its files whole

    graph = IdentityGraph(links=identity == "stitched")  # other policies only count: no id strings kept
    rows_in = mapped = 0
    by_reason: Counter[str] = Counter()
    by_skip: Counter[str] = Counter()
    warns: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    kept_events: list[pd.DataFrame] = []
    kept_quarantine: list[pd.DataFrame] = []
    keep = keep_frames or decisions == "bucket"
    bar = Bar(desc="mapping", unit="rows", disable=not progress)
    try:
        for mc in iter_mapped(path, datafile, blueprint=blueprint, identity=identity, decisions=decisions,
                              fmt=fmt, progress=progress, chunk_rows=chunk_rows, max_bytes=max_bytes,
                              graph=graph, workers=workers):
            rows_in += mc.rows_in
            graph.merge(mc.graph)
            mapped += len(mc.events)
            by_reason.update(mc.quarantine["reason"].value_counts().to_dict())
            by_skip.update(mc.skipped)
            warns.update(mc.warnings)
            kinds.update(mc.events["kind"].value_counts().to_dict())
            if events_out is not None:
                _append_in_slices(write_events_jsonl, mc.events, events_out)
            if quarantine_out is not None and len(mc.quarantine):
                write_quarantine_jsonl(mc.quarantine, quarantine_out, append=True)
            if keep:
                kept_events.append(mc.events)
            if keep_frames:
                kept_quarantine.append(mc.quarantine)
            bar.update(mc.rows_in)
    finally:
        bar.close()

    events = pd.concat(kept_events, ignore_index=True) if kept_events else empty(EVENTS)
    synthesized = 0
    if decisions == "bucket" and len(events):
        from .bucketing import bucket_impressions

        synth = conform(bucket_impressions(events, datafile, progress=progress), EVENTS)
        synthesized = len(synth)
        if events_out is not None and synthesized:
            _append_in_slices(write_events_jsonl, synth, events_out)
        events = pd.concat([events, synth], ignore_index=True)
    quarantine = pd.concat(kept_quarantine, ignore_index=True) if kept_quarantine else empty(QUARANTINE)
    summary = MapSummary(
        rows_in=rows_in, mapped=mapped, skipped=sum(by_skip.values()), quarantined=sum(by_reason.values()),
        by_reason=dict(sorted(by_reason.items())), by_skip=dict(sorted(by_skip.items())),
        warnings=dict(sorted(warns.items())), conversions=kinds.get("conversion", 0),
        impressions=kinds.get("impression", 0), synthesized=synthesized, visitors=graph.visitors(),
        multi_anonymous=graph.multi_anonymous(), identity=identity, decisions=decisions,
        events_out=str(events_out) if events_out is not None else None,
        quarantine_out=str(quarantine_out) if quarantine_out is not None else None,
    )
    if not summary.balanced:
        log.error("rows in %d != mapped %d + skipped %d + quarantined %d", summary.rows_in, summary.mapped,
                  summary.skipped, summary.quarantined)
    return MapOutput(events if keep_frames else empty(EVENTS), quarantine, summary)
