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

How it stays fast: the checks are numpy masks over the chunk, repeated values (event names,
keys, currencies, activation properties) are resolved once per distinct value, money is
converted by Arrow string kernels, and the only per-row Python is the tags of the conversions
whose tags are not their properties text as it is (those properties parsed once) and the SHA-1 of
derived uuids. Output columns are assembled as
Arrow arrays.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .activations import DECISION_COLUMNS, Impressions, map_activations
from .blueprint import Blueprint
from .contracts import (
    CAMPAIGN_ACTIVATED,
    EVENTS,
    NORMALIZED,
    PROPERTIES_CANONICAL,
    QUARANTINE,
    Reason,
    SkipRule,
    conform,
    empty,
)
from .datafile import Datafile
from .identity import Identity, as_identity, blank_to_null, event_uuids, resolve_visitor_ids
from .money import minor_units
from .payload import DEFAULT_MAX_BYTES, BodyHeader, event_body_sizes, gc_paused
from .tags import conversion_tags_column

__all__ = ["MapResult", "map_events"]

_STR = pa.large_string()


@dataclass(frozen=True)
class MapResult:
    events: pd.DataFrame  # EVENTS
    quarantine: pd.DataFrame  # QUARANTINE
    skipped: dict[str, int] = field(default_factory=dict)  # SkipRule value -> rows
    warnings: dict[str, int] = field(default_factory=dict)  # warning code -> rows

    @property
    def rows_mapped(self) -> int:
        return len(self.events) - int(self.events["synthesized"].fillna(False).sum())


class _Verdicts:
    """The first failure of each row: its reason code and detail (later failures do not count)."""

    def __init__(self, n: int) -> None:
        self.failed = np.zeros(n, dtype=bool)
        self.reason = np.full(n, None, dtype=object)
        self.detail = np.full(n, None, dtype=object)

    def fail(self, mask: np.ndarray, code: Reason, text: np.ndarray | str) -> None:
        m = mask & ~self.failed
        if m.any():
            self.failed |= m
            self.reason[m] = code.value
            self.detail[m] = text[m] if isinstance(text, np.ndarray) else text


def _objects(s: pd.Series) -> np.ndarray:
    return s.to_numpy(dtype=object, na_value=None)


def _arrow(s: pd.Series) -> pa.Array:
    arr = pa.array(s.array)
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _strings(arr: pa.Array) -> pd.Series:
    return pd.Series(_text(arr))


def _text(arr: pa.Array) -> pd.arrays.ArrowStringArray:
    return pd.arrays.ArrowStringArray(arr.cast(_STR))


def _constant(value: str, n: int) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int8)), pa.array([value], _STR)).cast(_STR)


def _map_each(arr: pa.Array, fn) -> pa.Array:
    """``fn`` of each value (null for nulls), computed once per distinct value (event names and
    keys repeat a lot), as large text."""
    enc = pc.dictionary_encode(arr)
    mapped = pa.array([fn(u) for u in enc.dictionary.to_pylist()], _STR)
    return mapped.take(enc.indices)


def _member(arr: pa.Array, values) -> np.ndarray:
    """Whether each value is one of ``values`` (nulls are not), as a numpy bool array."""
    return pc.is_in(arr, value_set=pa.array(list(values), arr.type)).to_numpy(zero_copy_only=False)


def _parse_values(raw: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """value_raw -> (float64 values, valid mask, detail of the invalid ones as an object array)."""
    n = len(raw)
    values, valid = np.zeros(n, dtype=np.float64), np.zeros(n, dtype=bool)
    detail = np.full(n, None, dtype=object)
    present = np.flatnonzero(raw.notna().to_numpy())
    if len(present):
        num = pd.to_numeric(raw.iloc[present], errors="coerce").astype("Float64")
        as_float = num.to_numpy(dtype=np.float64, na_value=np.nan)
        finite = np.isfinite(as_float)
        values[present[finite]] = as_float[finite]
        valid[present[finite]] = True
        for pos, text in zip(present[~finite].tolist(), raw.iloc[present[~finite]].tolist(), strict=True):
            detail[pos] = f"value {text[:60]!r} is not a finite number"
    return values, valid, detail


def map_events(
    normalized: pd.DataFrame,
    datafile: Datafile,
    blueprint: Blueprint,
    *,
    identity: str | Identity = "user_or_anonymous",
    activations: bool = True,
    max_bytes: int = DEFAULT_MAX_BYTES,
    body_order: bool = False,
) -> MapResult:
    """Map one chunk of NORMALIZED rows. ``activations=False`` (``--decisions none``) skips the
    activation events (counted as ``activation_not_sent``) instead of sending impressions.

    The events come in input order, or with ``body_order`` in the order bodies group them
    (:func:`toolkit.payload.body_order`): the columns are then built in that order directly, and
    building bodies from them skips re-sorting the whole frame."""
    with gc_paused():  # per-row tags and uuids: many small objects, no cycles
        return _map_events(normalized, datafile, blueprint, identity=identity, activations=activations,
                           max_bytes=max_bytes, body_order=body_order)


def _map_events(normalized: pd.DataFrame, datafile: Datafile, blueprint: Blueprint, *,
                identity: str | Identity, activations: bool, max_bytes: int, body_order: bool) -> MapResult:
    canonical = normalized.attrs.get(PROPERTIES_CANONICAL) is True  # texts as the loader writes them
    f = conform(normalized, NORMALIZED).reset_index(drop=True)
    n = len(f)
    verdict = _Verdicts(n)
    fail = verdict.fail
    skipped: Counter[str] = Counter()
    warnings: Counter[str] = Counter()

    # the text columns as Arrow arrays, cleaned by the kernels pandas' str.strip/lower/upper use
    typ = pc.fill_null(pc.utf8_lower(pc.utf8_trim_whitespace(_arrow(f["type"]))), "track")
    name = blank_to_null(_arrow(f["event"]))
    has_name = pc.is_valid(name).to_numpy(zero_copy_only=False)
    skip = _member(typ, blueprint.skip_types)
    skipped[SkipRule.NOT_TRACK.value] += int(skip.sum())
    live = ~skip
    fail(live & ~has_name, Reason.MISSING_EVENT_NAME, "track event without an event name")
    is_act = live & _member(name, blueprint.activations.events)
    if not activations:
        skipped[SkipRule.ACTIVATIONS_OFF.value] += int((is_act & ~verdict.failed).sum())
        live = live & ~is_act
        is_act = np.zeros(n, dtype=bool)
    keys = _map_each(name, blueprint.key_for)
    ignored = live & ~is_act & has_name & pc.is_null(keys).to_numpy(zero_copy_only=False) & ~verdict.failed
    skipped[SkipRule.BLUEPRINT_IGNORE.value] += int(ignored.sum())
    live = live & ~ignored
    fail(live & f["timestamp"].isna().to_numpy(), Reason.UNPARSEABLE_TIMESTAMP, "no usable timestamp")
    ident = as_identity(identity, f)
    visitor = resolve_visitor_ids(f, ident)
    fail(live & visitor.isna().to_numpy(), Reason.MISSING_VISITOR_ID,
         f"no visitor id under the {ident.policy!r} identity policy (no user_id / anonymous_id)")

    # conversions: event key must be in the datafile
    conv = live & ~is_act & ~verdict.failed
    not_in = conv & ~_member(keys, datafile.events)
    if not_in.any():
        texts = {}
        for k in keys.filter(pa.array(not_in)).unique().to_pylist():
            hint = datafile.suggest_key(k)
            texts[k] = (f"event key {k!r} is not in the datafile (revision {datafile.revision}); keys are "
                        f"case-sensitive" + (f": did you mean `{hint}`?" if hint else
                                             ": create it in Optimizely or map it in the blueprint"))
        fail(not_in, Reason.KEY_NOT_IN_DATAFILE, _map_each(keys, texts.get).to_numpy(zero_copy_only=False))

    # revenue (only on revenue events), value
    conv = live & ~is_act & ~verdict.failed
    rev_rows = conv & _member(keys, blueprint.revenue_events)
    raw_na = f["revenue_raw"].isna().to_numpy()
    has_rev = rev_rows & ~raw_na
    cur = pc.utf8_upper(blank_to_null(_arrow(f["currency"])))
    defaulted = has_rev & pc.is_null(cur).to_numpy(zero_copy_only=False)
    warnings["default_currency"] += int(defaulted.sum())
    warnings["revenue_event_without_revenue"] += int((rev_rows & raw_na).sum())
    if defaulted.any():
        cur = pc.if_else(pa.array(defaulted), pa.scalar(blueprint.default_currency, cur.type), cur)
    revenue, has_revenue = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
    if has_rev.any():
        pos = np.flatnonzero(has_rev)
        minor, why, text = minor_units(f["revenue_raw"].iloc[pos], _strings(cur.take(pa.array(pos))),
                                       allow_negative=blueprint.allow_refunds,
                                       already_minor=blueprint.amounts_in_minor_units)
        revenue[pos] = minor.to_numpy(dtype=np.int64, na_value=0)
        has_revenue[pos] = minor.notna().to_numpy()
        if why.notna().any():
            why, text = _objects(why), _objects(text)
            sources = f["revenue_source"].iloc[pos].astype("string").fillna("revenue").tolist()
            for code in (Reason.INVALID_REVENUE, Reason.UNKNOWN_CURRENCY):
                hit = np.flatnonzero(why == code.value)
                if len(hit):
                    m, detail = np.zeros(n, dtype=bool), np.full(n, None, dtype=object)
                    m[pos[hit]] = True
                    detail[pos[hit]] = [f"{text[i]} (property {sources[i]})" for i in hit.tolist()]
                    fail(m, code, detail)
    value, has_value, vdetail = _parse_values(f["value_raw"].astype("string"))
    fail(conv & (vdetail != None), Reason.INVALID_VALUE, vdetail)  # noqa: E711 (elementwise)

    ok = live & ~verdict.failed
    ok_pos = np.flatnonzero(ok)
    uuids = event_uuids(f, ok_pos)
    act_pos = np.flatnonzero(ok & is_act)
    c_pos = np.flatnonzero(ok & ~is_act)

    # impressions
    imp, imp_fail, imp_warn, bad_act = map_activations(f["properties"].iloc[act_pos].set_axis(act_pos),
                                                       uuids.loc[act_pos], datafile, blueprint)
    warnings.update(imp_warn)
    for code in (Reason.UNKNOWN_EXPERIMENT, Reason.UNKNOWN_VARIATION) if len(imp_fail) else ():
        sel = imp_fail.index[(imp_fail["reason"] == code.value).to_numpy()].to_numpy()
        if len(sel):
            m, detail = np.zeros(n, dtype=bool), np.full(n, None, dtype=object)
            m[sel] = True
            detail[sel] = _objects(imp_fail["detail"].loc[sel])
            fail(m, code, detail)

    # conversions
    rev_list = np.where(has_revenue[c_pos], revenue[c_pos].astype(object), None).tolist()
    val_list = np.where(has_value[c_pos], value[c_pos].astype(object), None).tolist()
    c_take = pa.array(c_pos)
    tags, bad_conv = conversion_tags_column(_arrow(f["properties"]).take(c_take), rev_list, val_list, cur.take(c_take),
                                            blueprint.tags, canonical=canonical)
    warnings["properties_not_an_object"] += bad_conv + bad_act

    out = _assemble(f, c_pos, uuids.loc[c_pos], imp, keys, visitor, revenue, has_revenue, value, has_value, tags, datafile,
                    in_body_order=body_order)

    # a single event over the body cap can never be sent
    if len(out):
        lengths = sum(pc.fill_null(pc.binary_length(_arrow(out[c])), 0).to_numpy(zero_copy_only=False)
                      for c in ("tags", "visitor_id"))  # bytes: at least the characters pandas' str.len counted
        suspects = out.index[lengths > max_bytes - 4096]
        if len(suspects):
            header = BodyHeader(datafile.account_id, datafile.project_id, datafile.revision,
                                datafile.anonymize_ip, datafile.bot_filtering)
            sizes = event_body_sizes(out.loc[suspects], header)
            big = suspects[sizes > max_bytes].to_numpy()
            m = np.zeros(n, dtype=bool)
            m[big] = True
            fail(m, Reason.EVENT_TOO_LARGE,
                 f"the event alone makes a body over the {max_bytes}-byte cap; drop or shrink its properties")
            out = out.drop(index=big)

    bad = np.flatnonzero(verdict.failed)
    quarantine = conform(pd.DataFrame({
        "source_event_id": f["event_id"].iloc[bad].to_numpy(), "source_row": f["source_row"].iloc[bad].to_numpy(),
        "reason": pd.array(verdict.reason[bad], dtype="string"), "detail": pd.array(verdict.detail[bad], dtype="string"),
    }), QUARANTINE) if len(bad) else empty(QUARANTINE)
    result = MapResult(
        events=out.reset_index(drop=True),
        quarantine=quarantine,
        skipped={k: v for k, v in skipped.items() if v},
        warnings={k: v for k, v in warnings.items() if v},
    )
    if len(result.events) + len(quarantine) + sum(result.skipped.values()) != n:  # pragma: no cover
        raise RuntimeError("map_events lost rows: mapped + quarantined + skipped != rows in")
    return result


def _assemble(f: pd.DataFrame, c_pos: np.ndarray, c_uuids: pd.Series, imp: Impressions, keys: pa.Array,
              visitor: pd.Series,
              revenue: np.ndarray, has_revenue: np.ndarray, value: np.ndarray, has_value: np.ndarray,
              tags: pa.Array, datafile: Datafile, *, in_body_order: bool = False) -> pd.DataFrame:
    """The EVENTS frame of the mapped rows (conversions at ``c_pos``, impressions at ``imp.rows``),
    in input order (or body order) and indexed by row position; string columns are built as Arrow
    arrays, each with one take."""
    i_pos = imp.rows
    kind = np.zeros(len(f), dtype=np.int8)  # 1 conversion, 2 impression, 0 not mapped
    kind[c_pos], kind[i_pos] = 1, 2
    out_pos = np.flatnonzero(kind)
    is_imp = kind[out_pos] == 2
    nc, ni = len(c_pos), len(i_pos)
    # out row k comes from conversion rank k or impression rank k: one permutation for every column
    perm = np.empty(len(out_pos), dtype=np.int64)
    perm[~is_imp] = np.arange(nc)
    perm[is_imp] = nc + np.arange(ni)
    if in_body_order:  # the rows reordered before any column is built: one take per column still
        from .payload import body_order_of

        both_uuids = pa.concat_arrays([_arrow(c_uuids).cast(_STR), imp.uuid.cast(_STR)])
        ts = f["timestamp"].to_numpy(dtype=np.int64, na_value=0)[out_pos]
        order = body_order_of(_arrow(visitor).take(pa.array(out_pos)), (~is_imp).astype(np.int8), ts,
                              both_uuids.take(pa.array(perm)), check=False)
        perm, is_imp, out_pos = perm[order], is_imp[order], out_pos[order]
    take = pa.array(perm)
    imp_rank = perm[is_imp] - nc  # the impression rank of each impression row out
    decision = np.zeros(len(out_pos), dtype=np.int64)
    decision[is_imp] = imp.code[imp_rank]
    decision_take = pa.array(decision, mask=~is_imp)  # each row's decision, null on conversion rows

    def both(conv_part: pa.Array, imp_part: pa.Array) -> pd.arrays.ArrowStringArray:
        return _text(pa.concat_arrays([conv_part.cast(_STR), imp_part.cast(_STR)]).take(take))

    def decision_column(name: str) -> pd.arrays.ArrowStringArray:  # one take from the distinct decisions
        return _text(imp.decisions[name].take(decision_take))

    c_keys = keys.take(pa.array(c_pos))
    event_ids = {k: e.id for k, e in datafile.events.items()}
    numeric_rows = ~is_imp

    conv_rank = perm[numeric_rows]  # per conversion row out: its rank in c_pos

    def numeric(values: np.ndarray, valid: np.ndarray, dtype: str) -> pd.api.extensions.ExtensionArray:
        v, m = np.zeros(len(out_pos), dtype=values.dtype), np.zeros(len(out_pos), dtype=bool)
        v[numeric_rows], m[numeric_rows] = values[c_pos][conv_rank], valid[c_pos][conv_rank]
        cls = pd.arrays.IntegerArray if dtype == "Int64" else pd.arrays.FloatingArray
        return cls(v, ~m)

    enabled = np.zeros(len(out_pos), dtype=bool)
    enabled[is_imp] = imp.enabled[decision[is_imp]]
    cols = {
        "kind": _text(pa.DictionaryArray.from_arrays(pa.array(is_imp.astype(np.int8)),
                                                     pa.array(["conversion", "impression"], _STR))),
        "uuid": both(_arrow(c_uuids), imp.uuid),
        "visitor_id": _text(_arrow(visitor).take(pa.array(out_pos))),
        "timestamp": f["timestamp"].array[out_pos],
        "key": both(c_keys, _constant(CAMPAIGN_ACTIVATED, ni)),
        "entity_id": both(_map_each(c_keys, event_ids.get), imp.column("entity_id")),
        "revenue": numeric(revenue, has_revenue, "Int64"),
        "value": numeric(value, has_value, "Float64"),
        "tags": both(tags, _constant("{}", ni)),
        **{c: decision_column(c) for c in DECISION_COLUMNS if c != "entity_id"},  # entity_id: conversions' too
        "enabled": pd.arrays.BooleanArray(enabled, ~is_imp),
        "synthesized": pd.arrays.BooleanArray(np.zeros(len(out_pos), dtype=bool), np.zeros(len(out_pos), dtype=bool)),
        "source_event_id": _text(_arrow(f["event_id"]).take(pa.array(out_pos))),
        "source_row": f["source_row"].array[out_pos],
    }
    out = pd.DataFrame(cols, index=pd.Index(out_pos), copy=False)  # arrays, not Series: ~4x less to build
    return conform(out, EVENTS)  # built to the contract above: passed through (a copy only if it were not)
