"""Event API validation, as Optimizely applies it, turning one request body into store rows.

Two levels, as in the real API:

- the *body* is malformed (not JSON, not an object, missing ``account_id`` / ``visitors``, wrong
  types, another account or project): :class:`BodyError`, answered with 400 and every problem found
  (up to :data:`MAX_PROBLEMS`), nothing stored;
- an *event* is well-formed but unusable (key not in the datafile, entity id that is not the
  key's event id, non-integer revenue, unknown campaign / experiment / variation): dropped silently
  (204) and counted by :class:`DropReason`, or, with ``X-Optimizely-Strict: true``, the whole body is
  answered with 400 listing the bad events.

An impression is a ``campaign_activated`` event whose snapshot carries ``decisions``; it becomes one
decision row (the decision for the event's campaign, else the first valid one), so that every event
is stored, a duplicate, or dropped: ``received == stored + duplicates + dropped``.
"""

from __future__ import annotations

import gc
import math
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from ..contracts import CAMPAIGN_ACTIVATED
from ..datafile import Datafile

__all__ = ["Catalog", "BodyError", "DropReason", "Parsed", "Rows", "decode_body", "check_body", "gc_paused",
           "MAX_PROBLEMS", "NULL"]

MAX_PROBLEMS = 20
_INT64 = 2**63 - 1


class DropReason(StrEnum):
    """Why an event was dropped (silently without strict mode). Stable codes: add, never rename."""

    KEY_NOT_IN_DATAFILE = "key_not_in_datafile"
    ENTITY_ID_MISMATCH = "entity_id_mismatch"
    INVALID_REVENUE = "invalid_revenue"
    INVALID_VALUE = "invalid_value"
    UNKNOWN_CAMPAIGN = "unknown_campaign"
    NO_DECISION = "no_decision"
    UNKNOWN_EXPERIMENT = "unknown_experiment"
    UNKNOWN_VARIATION = "unknown_variation"
    CAMPAIGN_MISMATCH = "campaign_mismatch"


class BodyError(Exception):
    """A malformed body: 400 with ``reason`` and ``problems``."""

    def __init__(self, reason: str, problems: list[str] | None = None, *, code: str = "invalid_body",
                 status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.problems = problems or []
        self.code = code  # stable: content_type | not_json | not_object | invalid_body | wrong_account | ...
        self.status = status

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "code": self.code, "reason": self.reason, "problems": self.problems}


@dataclass(frozen=True)
class Catalog:
    """What ingest needs from the datafile, precomputed for speed."""

    account_id: str
    project_id: str
    revision: str
    event_ids: dict[str, str]  # key -> id
    experiments: dict[str, tuple[str, frozenset[str], bool]]  # id -> (campaign id, variation ids, running)
    campaigns: frozenset[str]

    @classmethod
    def from_datafile(cls, df: Datafile) -> Catalog:
        experiments = {
            e.id: (e.campaign_id, frozenset(v.id for v in e.variations), e.is_running)
            for e in df.experiments.values()
        }
        return cls(
            account_id=df.account_id,
            project_id=df.project_id,
            revision=df.revision,
            event_ids={k: e.id for k, e in df.events.items()},
            experiments=experiments,
            campaigns=frozenset(c for c, _, _ in experiments.values()),
        )


NULL = float("nan")
"""What a row holds for SQL NULL: SQLite binds a NaN as NULL, and a float binds at once, while
Python 3.11's sqlite3 runs ``None`` and ``bytes`` through its adapter lookup (~0.4 us each: that
was half the cost of an append). Row values are int, float, str, bytearray (a BLOB) or NULL."""


class Rows(list):
    """One body's store rows, event columns only, and ``header``: the body-level values they share
    (revision, client_name, client_version, account_id, received_at), stored once per body.

    Values are ready to bind cheaply: :data:`NULL` for a missing value, ``bytearray`` for JSON."""

    __slots__ = ("header",)

    def __init__(self, header: tuple[Any, ...] = (None, None, None, None, 0.0), rows: Any = ()) -> None:
        super().__init__(rows)
        self.header = header


@dataclass
class Parsed:
    decisions: Rows = field(default_factory=Rows)  # store.DECISION_EVENT_COLUMNS
    conversions: Rows = field(default_factory=Rows)  # store.CONVERSION_EVENT_COLUMNS
    dropped: Counter[str] = field(default_factory=Counter)
    bad: list[dict[str, Any]] = field(default_factory=list)  # first MAX_PROBLEMS dropped events, for strict mode
    n_events: int = 0


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic GC inside (reference counting still frees everything); the previous state after.

    A 1000-event body decodes into ~5000 containers, none in a cycle: the collections they
    triggered cost more than decoding and checking the body."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def decode_body(data: bytes, content_type: str | None) -> dict[str, Any]:
    """Bytes -> the body object, or :class:`BodyError`."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        raise BodyError(f"Content-Type must be application/json, got {content_type or 'none'!r}", code="content_type")
    if not data:
        raise BodyError("empty body: send a JSON object with account_id and visitors", code="not_json")
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BodyError(f"body is not valid JSON ({str(exc)[:200]})", code="not_json") from None
    if not isinstance(body, dict):
        raise BodyError(f"body must be a JSON object, got {_kind(body)}", code="not_object")
    return body


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    return {dict: "object", list: "array", str: "string", int: "integer", float: "number"}.get(type(v), type(v).__name__)


class _Problems(list):
    def add(self, path: str, msg: str) -> None:
        self.append(f"{path}: {msg}")
        if len(self) >= MAX_PROBLEMS:
            raise BodyError(f"invalid body: {len(self)}+ problems (first {MAX_PROBLEMS} listed)", list(self))


def _str_field(obj: dict, name: str, path: str, problems: _Problems, *, required: bool = True) -> str | None:
    v = obj.get(name)
    if isinstance(v, str):
        return v
    if v is None and not required:
        return None
    problems.add(f"{path}.{name}", "missing" if v is None else f"expected a string, got {_kind(v)}")
    return None


def _check_header(body: dict, catalog: Catalog, problems: _Problems) -> None:
    account = body.get("account_id")
    if "account_id" not in body:
        problems.add("account_id", "missing (the Optimizely account id, a string of digits)")
    elif not isinstance(account, str):
        problems.add("account_id", f"expected a string, got {_kind(account)}")
    elif account != catalog.account_id:
        raise BodyError(f"account_id {account!r} is not this project's account ({catalog.account_id!r}); "
                        "check the ids against the dashboard", code="wrong_account")
    project = body.get("project_id")
    if project is not None and not isinstance(project, str):
        problems.add("project_id", f"expected a string, got {_kind(project)}")
    elif project is not None and project != catalog.project_id:
        raise BodyError(f"project_id {project!r} is not this project ({catalog.project_id!r}); "
                        "check the ids against the dashboard", code="wrong_project")
    for name in ("revision", "client_name", "client_version"):
        v = body.get(name)
        if v is not None and not isinstance(v, str):
            problems.add(name, f"expected a string, got {_kind(v)}")
    if "visitors" not in body:
        problems.add("visitors", "missing (an array of visitors)")
    elif not isinstance(body["visitors"], list):
        problems.add("visitors", f"expected an array, got {_kind(body['visitors'])}")


def _pick_decision(
    decisions: list[dict], entity_id: str, catalog: Catalog, at: tuple[int, int], problems: _Problems
) -> tuple[dict | None, str | None]:
    """The decision that goes with an impression event, or the drop reason (``at``: visitor and
    snapshot index, for the path of a problem)."""
    first_reason: str | None = DropReason.NO_DECISION
    chosen: dict | None = None
    for j, d in enumerate(decisions):
        if type(d) is not dict:
            problems.add(f"{_path(*at)}.decisions[{j}]", f"expected an object, got {_kind(d)}")
            continue
        campaign_id, experiment_id, variation_id = d.get("campaign_id"), d.get("experiment_id"), d.get("variation_id")
        if type(campaign_id) is not str or type(experiment_id) is not str or type(variation_id) is not str:
            for name in ("campaign_id", "experiment_id", "variation_id"):
                _str_field(d, name, f"{_path(*at)}.decisions[{j}]", problems)
            continue
        exp = catalog.experiments.get(experiment_id)
        reason = None
        if exp is None:
            reason = DropReason.UNKNOWN_EXPERIMENT
        elif variation_id not in exp[1]:
            reason = DropReason.UNKNOWN_VARIATION
        elif campaign_id != exp[0]:
            reason = DropReason.CAMPAIGN_MISMATCH
        if reason:
            if first_reason == DropReason.NO_DECISION:
                first_reason = reason
            continue
        if chosen is None or (campaign_id == entity_id and chosen.get("campaign_id") != entity_id):
            chosen = d
    return (chosen, None) if chosen is not None else (None, first_reason)


def check_body(body: dict[str, Any], catalog: Catalog, *, received_at: float) -> Parsed:
    """Validate a decoded body; rows for the store plus what was dropped. Raises :class:`BodyError`."""
    problems = _Problems()
    _check_header(body, catalog, problems)
    if problems:
        raise BodyError(f"invalid body: {len(problems)} problem(s)", list(problems))
    header = (body.get("revision"), body.get("client_name"), body.get("client_version"), body["account_id"],
              received_at)
    out = Parsed(Rows(header), Rows(header))
    event_ids = catalog.event_ids
    add_decision = out.decisions.append
    add_conversion = out.conversions.append
    dumps = orjson.dumps
    n_events = 0

    def drop(at: tuple[int, int, int], ev: dict, reason: str) -> None:
        out.dropped[reason] += 1
        if len(out.bad) < MAX_PROBLEMS:
            out.bad.append({"path": _path(*at), "uuid": ev.get("uuid"), "key": ev.get("key"),
                            "entity_id": ev.get("entity_id"), "reason": str(reason)})

    for i, visitor in enumerate(body["visitors"]):
        if type(visitor) is not dict:
            problems.add(f"visitors[{i}]", f"expected an object, got {_kind(visitor)}")
            continue
        visitor_id = visitor.get("visitor_id")
        if type(visitor_id) is not str:
            _str_field(visitor, "visitor_id", f"visitors[{i}]", problems)
            visitor_id = None
        attributes = visitor.get("attributes")
        if attributes is not None and type(attributes) is not list:
            problems.add(f"visitors[{i}].attributes", f"expected an array, got {_kind(attributes)}")
        attrs_blob = bytearray(dumps(attributes)) if attributes else NULL
        snapshots = visitor.get("snapshots")
        if type(snapshots) is not list:
            problems.add(f"visitors[{i}].snapshots",
                         "missing" if snapshots is None else f"expected an array, got {_kind(snapshots)}")
            continue
        for s, snap in enumerate(snapshots):
            if type(snap) is not dict:
                problems.add(_path(i, s), f"expected an object, got {_kind(snap)}")
                continue
            decisions = snap.get("decisions")
            if decisions is not None and type(decisions) is not list:
                problems.add(f"{_path(i, s)}.decisions", f"expected an array, got {_kind(decisions)}")
                decisions = None
            events = snap.get("events")
            if type(events) is not list:
                problems.add(f"{_path(i, s)}.events",
                             "missing" if events is None else f"expected an array, got {_kind(events)}")
                continue
            for e, ev in enumerate(events):
                if type(ev) is not dict:
                    problems.add(_path(i, s, e), f"expected an object, got {_kind(ev)}")
                    continue
                entity_id = ev.get("entity_id")
                key = ev.get("key")
                uuid = ev.get("uuid")
                ts = ev.get("timestamp")
                tags = ev.get("tags")
                if (type(entity_id) is not str or type(key) is not str or type(uuid) is not str
                        or type(ts) is not int or not 0 <= ts <= _INT64 or (tags is not None and type(tags) is not dict)):
                    _event_problems(ev, _path(i, s, e), problems)
                    continue
                if visitor_id is None:
                    continue
                n_events += 1
                if key == CAMPAIGN_ACTIVATED:
                    if entity_id not in catalog.campaigns:
                        drop((i, s, e), ev, DropReason.UNKNOWN_CAMPAIGN)
                        continue
                    d, reason = _pick_decision(decisions or [], entity_id, catalog, (i, s), problems)
                    if d is None:
                        drop((i, s, e), ev, reason or DropReason.NO_DECISION)
                        continue
                    meta = d.get("metadata") if isinstance(d.get("metadata"), dict) else {}
                    enabled = meta.get("enabled")
                    add_decision((
                        entity_id, uuid, ts, visitor_id, d["campaign_id"], d["experiment_id"], d["variation_id"],
                        _opt_str(meta.get("flag_key")), _opt_str(meta.get("rule_key")),
                        _opt_str(meta.get("rule_type")), _opt_str(meta.get("variation_key")),
                        int(enabled) if isinstance(enabled, bool) else NULL,
                        int(catalog.experiments[d["experiment_id"]][2]), attrs_blob,
                    ))
                    continue
                wanted = event_ids.get(key)
                if wanted is None:
                    drop((i, s, e), ev, DropReason.KEY_NOT_IN_DATAFILE)
                    continue
                if entity_id != wanted:
                    drop((i, s, e), ev, DropReason.ENTITY_ID_MISMATCH)
                    continue
                revenue = ev.get("revenue")
                if revenue is not None and (type(revenue) is not int or abs(revenue) > _INT64):
                    drop((i, s, e), ev, DropReason.INVALID_REVENUE)
                    continue
                value = ev.get("value")
                if value is not None and (type(value) not in (int, float) or not math.isfinite(value)):
                    drop((i, s, e), ev, DropReason.INVALID_VALUE)
                    continue
                add_conversion((
                    entity_id, uuid, ts, key, visitor_id, NULL if revenue is None else revenue,
                    NULL if value is None else float(value),
                    bytearray(dumps(tags)) if tags else NULL, attrs_blob,
                ))
    if problems:
        raise BodyError(f"invalid body: {len(problems)} problem(s)", list(problems))
    out.n_events = n_events
    return out


def _path(i: int, s: int | None = None, e: int | None = None) -> str:
    path = f"visitors[{i}]"
    if s is not None:
        path += f".snapshots[{s}]"
    if e is not None:
        path += f".events[{e}]"
    return path


def _event_problems(ev: dict, path: str, problems: _Problems) -> None:
    """Every type problem of one event (the slow path: only for a bad event)."""
    for name in ("entity_id", "key", "uuid"):
        _str_field(ev, name, path, problems)
    ts = ev.get("timestamp")
    if type(ts) is not int:
        problems.add(f"{path}.timestamp", "missing" if ts is None else
                     f"expected an integer (epoch milliseconds), got {_kind(ts)}")
    elif not 0 <= ts <= _INT64:
        problems.add(f"{path}.timestamp", "out of range (epoch milliseconds, 0 .. 2**63-1)")
    tags = ev.get("tags")
    if tags is not None and type(tags) is not dict:
        problems.add(f"{path}.tags", f"expected an object, got {_kind(tags)}")


def _opt_str(v: Any) -> str | float:
    return v if isinstance(v, str) else NULL
