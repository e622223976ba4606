"""Normalized export rows -> Optimizely events (conversions and impressions), per chunk.

``map_events`` is pure: one NORMALIZED frame in, a :class:`MapResult` out. Every input row ends
up in exactly one of: mapped (one Optimizely event), skipped by a rule (``page``, ``identify``,
... or ignored by the blueprint; counted in ``skipped``), or quarantined (one QUARANTINE row with
a stable reason). Checks run in this order and the first failure is the row's reason:
event name, timestamp, visitor id, then for activations the experiment and variation, for
conversions the event key (``key_not_in_datafile``, with "did you mean" when a case- or
separator-insensitive match exists), revenue / currency, value, and the body size.

Conversions: ``key`` from the blueprint (case-sensitive), ``entity_id`` the datafile event id,
``revenue`` integer minor units (only for the blueprint's revenue events), ``value`` a number,
``tags`` sorted-key JSON text holding the property tags plus ``revenue``, ``value`` and
``currency`` (as the SDK sends revenue and value inside the tags too). A property named
``revenue``/``value``/``currency`` is never passed through raw. Timestamps are the source ms.
Output rows keep the input order; the same input gives the same output, byte for byte.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from .activations import map_activations
from .blueprint import Blueprint, TagRules, load_blueprint
from .contracts import EVENTS, NORMALIZED, QUARANTINE, Reason, SkipRule, conform, empty
from .datafile import Datafile
from .errors import ExportError
from .events_io import write_events_jsonl
from .identity import Identity, IdentityGraph, as_identity, event_uuids, resolve_visitor_ids, stable_uuid
from .money import minor_units
from .payload import DEFAULT_MAX_BYTES, BodyHeader, event_body_sizes, gc_paused

__all__ = [
    "MapResult",
    "MapSummary",
    "MapOutput",
    "map_events",
    "map_export",
    "build_tags",
    "stable_uuid",
    "write_quarantine_jsonl",
    "DECISIONS",
]

log = logging.getLogger(__name__)
DECISIONS = ("export", "bucket", "none")

_MONEY_TAGS = ("revenue", "value", "currency")


@dataclass(frozen=True)
class MapResult:
    events: pd.DataFrame  # EVENTS
    quarantine: pd.DataFrame  # QUARANTINE
    skipped: dict[str, int] = field(default_factory=dict)  # SkipRule value -> rows
    warnings: dict[str, int] = field(default_factory=dict)  # warning code -> rows

    @property
    def rows_mapped(self) -> int:
        return len(self.events) - int(self.events["synthesized"].fillna(False).sum())


_SCALARS = frozenset({str, int, float, bool})  # orjson never yields NaN/inf: JSON has none


def build_tags(props: dict, rules: TagRules, *, revenue: int | None, value: float | None,
               currency: str | None) -> str:
    """Tags as sorted-key JSON text: scalars as they are; a list -> ``<name>_count``; an object
    flattened one level with dotted keys (or dropped, by the rules); nulls left out."""
    out: dict[str, object] = {}
    exclude = rules.exclude
    for k, v in props.items():
        t = type(v)
        if t in _SCALARS:
            if k not in exclude and k not in _MONEY_TAGS:
                out[k] = v
        elif v is None or k in exclude or k in _MONEY_TAGS:
            continue
        elif t is list:
            if rules.lists == "count":
                out[f"{k}_count"] = len(v)
        elif t is dict and rules.objects == "flatten":
            for k2, v2 in v.items():
                if type(v2) in _SCALARS:
                    out[f"{k}.{k2}"] = v2
    if revenue is not None:
        out["revenue"] = revenue
    if value is not None:
        out["value"] = value
    if currency:
        out["currency"] = currency
    return orjson.dumps(out, option=orjson.OPT_SORT_KEYS).decode() if out else "{}"


def _parse_props(texts: list) -> tuple[list[dict], int]:
    out, bad = [], 0
    loads = orjson.loads
    for t in texts:
        if t is None or t == "{}" or t == "":
            out.append({})
            continue
        try:
            d = loads(t)
        except orjson.JSONDecodeError:
            d = None
        if not isinstance(d, dict):
            bad += 1
            d = {}
        out.append(d)
    return out, bad


def _map_unique(s: pd.Series, fn) -> pd.Series:
    """``s.map(fn)`` computed once per distinct value (event names repeat a lot)."""
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    mapped = np.array([fn(u) for u in uniques.tolist()] + [None], dtype=object)
    return pd.Series(mapped[codes], index=s.index, dtype="string")


def _parse_values(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    """value_raw -> (Float64, detail of the invalid ones)."""
    num = pd.to_numeric(raw, errors="coerce").astype("Float64")
    finite = num.notna() & np.isfinite(num.fillna(0).to_numpy(dtype=float))
    bad = raw.notna() & ~finite
    detail = pd.Series(pd.NA, index=raw.index, dtype="string")
    if bool(bad.any()):
        detail[bad] = ("value " + raw[bad].astype("string").str.slice(0, 60).map(repr)
                       + " is not a finite number").astype("string")
    return num.where(finite), detail


def map_events(
    normalized: pd.DataFrame,
    datafile: Datafile,
    blueprint: Blueprint,
    *,
    identity: str | Identity = "user_or_anonymous",
    activations: bool = True,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> MapResult:
    """Map one chunk of NORMALIZED rows. ``activations=False`` (``--decisions none``) skips the
    activation events (counted as ``activation_not_sent``) instead of sending impressions."""
    with gc_paused():  # per-row tags and uuids: many small objects, no cycles
        return _map_events(normalized, datafile, blueprint, identity=identity, activations=activations,
                           max_bytes=max_bytes)


def _map_events(normalized: pd.DataFrame, datafile: Datafile, blueprint: Blueprint, *,
                identity: str | Identity, activations: bool, max_bytes: int) -> MapResult:
    f = conform(normalized, NORMALIZED).reset_index(drop=True)
    n = len(f)
    reason = pd.Series(pd.NA, index=f.index, dtype="string")
    detail = pd.Series(pd.NA, index=f.index, dtype="string")
    skipped: Counter[str] = Counter()
    warnings: Counter[str] = Counter()

    def fail(mask: pd.Series, code: Reason, text: pd.Series | str) -> None:
        mask = mask & reason.isna()
        if bool(mask.any()):
            reason[mask] = code.value
            detail[mask] = text[mask] if isinstance(text, pd.Series) else text

    typ = f["type"].astype("string").str.strip().str.lower().fillna("track")
    name = f["event"].astype("string").str.strip()
    name = name.mask(name == "")
    skip = typ.isin(list(blueprint.skip_types))
    skipped[SkipRule.NOT_TRACK.value] += int(skip.sum())
    live = ~skip
    fail(live & name.isna(), Reason.MISSING_EVENT_NAME, "track event without an event name")
    is_act = live & name.isin(list(blueprint.activations.events)).fillna(False)
    if not activations:
        skipped[SkipRule.ACTIVATIONS_OFF.value] += int((is_act & reason.isna()).sum())
        live = live & ~is_act
        is_act = is_act & False
    keys = _map_unique(name, blueprint.key_for)
    ignored = live & ~is_act & name.notna() & keys.isna() & reason.isna()
    skipped[SkipRule.BLUEPRINT_IGNORE.value] += int(ignored.sum())
    live = live & ~ignored
    fail(live & f["timestamp"].isna(), Reason.UNPARSEABLE_TIMESTAMP, "no usable timestamp")
    visitor = resolve_visitor_ids(f, as_identity(identity, f))
    fail(live & visitor.isna(), Reason.MISSING_VISITOR_ID,
         f"no visitor id under the {as_identity(identity).policy!r} identity policy (no user_id / anonymous_id)")

    # conversions: event key must be in the datafile
    conv = live & ~is_act & reason.isna()
    not_in = conv & ~keys.isin(list(datafile.events)).fillna(False)
    if bool(not_in.any()):
        texts = {}
        for k in keys[not_in].unique().tolist():
            hint = datafile.suggest_key(k)
            texts[k] = (f"event key {k!r} is not in the datafile (revision {datafile.revision}); keys are "
                        f"case-sensitive" + (f": did you mean `{hint}`?" if hint else
                                             ": create it in Optimizely or map it in the blueprint"))
        fail(not_in, Reason.KEY_NOT_IN_DATAFILE, _map_unique(keys, texts.get))

    # revenue (only on revenue events), value
    conv = live & ~is_act & reason.isna()
    rev_rows = conv & keys.isin(list(blueprint.revenue_events)).fillna(False)
    has_rev = rev_rows & f["revenue_raw"].notna()
    cur = f["currency"].astype("string").str.strip()
    cur = cur.mask(cur == "").str.upper()
    defaulted = has_rev & cur.isna()
    warnings["default_currency"] += int(defaulted.sum())
    warnings["revenue_event_without_revenue"] += int((rev_rows & f["revenue_raw"].isna()).sum())
    cur = cur.mask(defaulted, blueprint.default_currency)
    revenue = pd.Series(pd.NA, index=f.index, dtype="Int64")
    if bool(has_rev.any()):
        minor, why, text = minor_units(f.loc[has_rev, "revenue_raw"], cur[has_rev],
                                       allow_negative=blueprint.allow_refunds)
        revenue[has_rev] = minor
        for code in (Reason.INVALID_REVENUE, Reason.UNKNOWN_CURRENCY):
            m = pd.Series(False, index=f.index)
            m[has_rev] = (why == code.value).fillna(False)
            src = f["revenue_source"].astype("string").fillna("revenue")
            fail(m, code, (text.reindex(f.index) + " (property " + src + ")").astype("string"))
    value, vdetail = _parse_values(f["value_raw"].astype("string"))
    fail(conv & vdetail.notna(), Reason.INVALID_VALUE, vdetail)

    ok = live & reason.isna()
    uuids = event_uuids(f[ok.to_numpy()])  # index-aligned with f
    act_ok = ok & is_act
    conv_ok = ok & ~is_act
    props_all, bad_props = _parse_props(f.loc[ok, "properties"].astype(object).where(f.loc[ok, "properties"].notna(),
                                                                                    None).tolist())
    warnings["properties_not_an_object"] += bad_props
    props_of = dict(zip(f.index[ok.to_numpy()].tolist(), props_all, strict=True))

    # impressions
    imp_idx = f.index[act_ok.to_numpy()]
    imp, imp_fail, imp_warn = map_activations([props_of[i] for i in imp_idx], imp_idx,
                                              uuids[imp_idx].tolist(), datafile, blueprint)
    warnings.update(imp_warn)
    for code in (Reason.UNKNOWN_EXPERIMENT, Reason.UNKNOWN_VARIATION):
        m = pd.Series(False, index=f.index)
        sel = imp_fail.index[(imp_fail["reason"] == code.value).to_numpy()]
        m[sel] = True
        fail(m, code, imp_fail["detail"].reindex(f.index))

    # conversions
    c_idx = f.index[conv_ok.to_numpy()]
    keep_currency = cur[conv_ok].astype(object).where(cur[conv_ok].notna(), None).tolist()
    revs = revenue[conv_ok].astype(object).where(revenue[conv_ok].notna(), None).tolist()
    vals = value[conv_ok].astype(object).where(value[conv_ok].notna(), None).tolist()
    tags = [build_tags(props_of[i], blueprint.tags, revenue=r, value=v, currency=c)
            for i, r, v, c in zip(c_idx, revs, vals, keep_currency, strict=True)]
    event_ids = {k: e.id for k, e in datafile.events.items()}
    conv_frame = pd.DataFrame({
        "kind": pd.Series("conversion", index=c_idx, dtype="string"),
        "uuid": uuids[c_idx],
        "key": keys[c_idx],
        "entity_id": _map_unique(keys[c_idx], event_ids.get),
        "revenue": revenue[c_idx],
        "value": value[c_idx],
        "tags": pd.Series(tags, index=c_idx, dtype="string"),
    }, index=c_idx)

    out = pd.concat([conv_frame, imp], axis=0).sort_index(kind="stable")
    out["visitor_id"] = visitor[out.index]
    out["timestamp"] = f.loc[out.index, "timestamp"]
    out["source_event_id"] = f.loc[out.index, "event_id"]
    out["source_row"] = f.loc[out.index, "source_row"]
    out["synthesized"] = False
    out["tags"] = out["tags"].fillna("{}")
    out = conform(out, EVENTS)

    # a single event over the body cap can never be sent
    if len(out):
        lengths = out["tags"].str.len().fillna(0).to_numpy() + out["visitor_id"].str.len().fillna(0).to_numpy()
        suspects = out.index[lengths > max_bytes - 4096]
        if len(suspects):
            header = BodyHeader(datafile.account_id, datafile.project_id, datafile.revision,
                                datafile.anonymize_ip, datafile.bot_filtering)
            sizes = event_body_sizes(out.loc[suspects], header)
            big = suspects[sizes > max_bytes]
            m = pd.Series(False, index=f.index)
            m[big] = True
            fail(m, Reason.EVENT_TOO_LARGE,
                 f"the event alone makes a body over the {max_bytes}-byte cap; drop or shrink its properties")
            out = out.drop(index=big)

    bad = reason.notna()
    quarantine = conform(pd.DataFrame({
        "source_event_id": f.loc[bad, "event_id"], "source_row": f.loc[bad, "source_row"],
        "reason": reason[bad], "detail": detail[bad],
    }), QUARANTINE).reset_index(drop=True) if bool(bad.any()) else empty(QUARANTINE)
    result = MapResult(
        events=out.reset_index(drop=True),
        quarantine=quarantine,
        skipped={k: v for k, v in skipped.items() if v},
        warnings={k: v for k, v in warnings.items() if v},
    )
    if len(result.events) + len(quarantine) + sum(result.skipped.values()) != n:  # pragma: no cover
        raise RuntimeError("map_events lost rows: mapped + quarantined + skipped != rows in")
    return result



# ------------------------------------------------------------------------------------ map_export


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


def write_quarantine_jsonl(frame: pd.DataFrame, path: str | os.PathLike[str], *, append: bool = False) -> int:
    """QUARANTINE rows as JSON Lines (every field on every line, nulls as null)."""
    frame = conform(frame, QUARANTINE)
    cols = list(QUARANTINE)
    data = [frame[c].astype(object).where(frame[c].notna(), None).tolist() for c in cols]
    with open(path, "ab" if append else "wb") as fh:
        for row in zip(*data, strict=True):
            fh.write(orjson.dumps(dict(zip(cols, row, strict=True))))
            fh.write(b"\n")
    return len(frame)


def _chunks(path, fmt, blueprint: Blueprint, chunk_rows: int):
    from .exports import iter_export

    return iter_export(path, fmt=fmt, chunk_rows=chunk_rows, revenue_keys=blueprint.revenue_keys)


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
) -> MapOutput:
    """Load an export chunk by chunk, map it, write events / quarantine JSON Lines.

    ``decisions``: ``export`` sends the export's activation events as impressions; ``bucket``
    also synthesizes impressions with the SDK's bucketer for converting visitors
    (:func:`toolkit.bucketing.bucket_impressions`, on all mapped events once at the end, so
    those events are kept in memory); ``none`` sends conversions only. ``identity="stitched"``
    reads the export twice (a first pass collects the identify links). With
    ``keep_frames=False`` the frames are only written, not returned (memory stays flat).
    """
    from tqdm.auto import tqdm

    from .identity import POLICIES

    if identity not in POLICIES:
        raise ExportError(f"identity policy {identity!r}: use one of {', '.join(POLICIES)}")
    if decisions not in DECISIONS:
        raise ExportError(f"decisions {decisions!r}: use one of {', '.join(DECISIONS)}")
    blueprint = blueprint or load_blueprint()
    for out_path in (events_out, quarantine_out):
        if out_path is not None:
            Path(out_path).parent.mkdir(parents=True, exist_ok=True)
            Path(out_path).write_bytes(b"")  # truncate: each run writes its files whole

    graph = IdentityGraph()
    if identity == "stitched":
        for chunk in tqdm(_chunks(path, fmt, blueprint, chunk_rows), desc="identity links", unit="chunk",
                          disable=not progress):
            graph.add(chunk.events)
        ident = graph.resolver("stitched")
    else:
        ident = Identity(identity)

    rows_in = mapped = 0
    by_reason: Counter[str] = Counter()
    by_skip: Counter[str] = Counter()
    warns: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    visitors: set[str] = set()
    kept_events: list[pd.DataFrame] = []
    kept_quarantine: list[pd.DataFrame] = []
    keep = keep_frames or decisions == "bucket"
    bar = tqdm(desc="mapping", unit="rows", disable=not progress)
    try:
        for chunk in _chunks(path, fmt, blueprint, chunk_rows):
            rows_in += int(chunk.rows_in)
            if identity != "stitched":
                graph.add(chunk.events)
            res = map_events(chunk.events, datafile, blueprint, identity=ident,
                             activations=decisions != "none", max_bytes=max_bytes)
            quarantine = res.quarantine
            if len(chunk.quarantine):  # the loader's rejects and ours, in export order
                quarantine = pd.concat([conform(chunk.quarantine, QUARANTINE), res.quarantine], ignore_index=True)
                quarantine = quarantine.sort_values("source_row", kind="stable").reset_index(drop=True)
            mapped += len(res.events)
            by_reason.update(quarantine["reason"].value_counts().to_dict())
            by_skip.update(res.skipped)
            warns.update(res.warnings)
            kinds.update(res.events["kind"].value_counts().to_dict())
            visitors.update(res.events["visitor_id"].dropna().unique().tolist())
            if events_out is not None:
                write_events_jsonl(res.events, events_out, append=True)
            if quarantine_out is not None and len(quarantine):
                write_quarantine_jsonl(quarantine, quarantine_out, append=True)
            if keep:
                kept_events.append(res.events)
            if keep_frames:
                kept_quarantine.append(quarantine)
            bar.update(int(chunk.rows_in))
    finally:
        bar.close()

    events = pd.concat(kept_events, ignore_index=True) if kept_events else empty(EVENTS)
    synthesized = 0
    if decisions == "bucket" and len(events):
        from .bucketing import bucket_impressions

        synth = conform(bucket_impressions(events, datafile, progress=progress), EVENTS)
        synthesized = len(synth)
        if events_out is not None and synthesized:
            write_events_jsonl(synth, events_out, append=True)
        events = pd.concat([events, synth], ignore_index=True)
    quarantine = pd.concat(kept_quarantine, ignore_index=True) if kept_quarantine else empty(QUARANTINE)
    summary = MapSummary(
        rows_in=rows_in, mapped=mapped, skipped=sum(by_skip.values()), quarantined=sum(by_reason.values()),
        by_reason=dict(sorted(by_reason.items())), by_skip=dict(sorted(by_skip.items())),
        warnings=dict(sorted(warns.items())), conversions=kinds.get("conversion", 0),
        impressions=kinds.get("impression", 0), synthesized=synthesized, visitors=len(visitors),
        multi_anonymous=graph.multi_anonymous(), identity=identity, decisions=decisions,
        events_out=str(events_out) if events_out is not None else None,
        quarantine_out=str(quarantine_out) if quarantine_out is not None else None,
    )
    if not summary.balanced:
        log.error("rows in %d != mapped %d + skipped %d + quarantined %d", summary.rows_in, summary.mapped,
                  summary.skipped, summary.quarantined)
    return MapOutput(events if keep_frames else empty(EVENTS), quarantine, summary)
