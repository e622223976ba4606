"""The blueprint: which export events become which Optimizely events, with which revenue and tags.

The default ships as ``data/blueprint.toml`` (read it: every field is commented). A user file is
read on top of it: tables merge key by key (the user's entries win), plain values and lists
replace the default's; ``extends = false`` in the user file starts from nothing. A bad file raises
:class:`~toolkit.errors.BlueprintError` naming the file and the field.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .errors import BlueprintError
from .money import currency_exponent, normalize_currency

__all__ = ["Blueprint", "TagRules", "Activations", "load_blueprint", "parse_blueprint", "DEFAULT_BLUEPRINT"]

DEFAULT_BLUEPRINT = Path(__file__).resolve().parent.parent / "data" / "blueprint.toml"

# section -> field -> expected type(s), for one-line errors on typos and wrong types
_SCHEMA: dict[str, dict[str, tuple[type, ...]]] = {
    "": {"version": (int,), "extends": (bool,)},
    "events": {},  # free-form: name -> key
    "unmapped": {"pass_through": (bool,), "ignore": (list,)},
    "skip": {"types": (list,)},
    "revenue": {"events": (list,), "keys": (list,), "default_currency": (str,), "allow_refunds": (bool,),
                "amounts_in_minor_units": (bool,)},
    "tags": {"lists": (str,), "objects": (str,), "exclude": (list,)},
    "activations": {"events": (list,), "experiment": (list,), "variation": (list,)},
}
_CHOICES = {("tags", "lists"): ("count", "drop"), ("tags", "objects"): ("flatten", "drop")}


@dataclass(frozen=True)
class TagRules:
    lists: str = "count"  # count | drop
    objects: str = "flatten"  # flatten | drop
    exclude: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Activations:
    events: frozenset[str] = frozenset()
    experiment: tuple[str, ...] = ("experiment_id", "experiment_key")
    variation: tuple[str, ...] = ("variation_id", "variation_key")


@dataclass(frozen=True)
class Blueprint:
    source: str
    events: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    pass_through: bool = True
    ignore_events: frozenset[str] = frozenset()
    skip_types: frozenset[str] = frozenset({"page", "identify", "group", "screen"})
    revenue_events: frozenset[str] = frozenset()
    revenue_keys: tuple[str, ...] = ("revenue", "total", "value")
    default_currency: str = "USD"
    allow_refunds: bool = False
    amounts_in_minor_units: bool = False  # the export already holds cents: send amounts as they are
    tags: TagRules = TagRules()
    activations: Activations = Activations()

    def key_for(self, name: str) -> str | None:
        """The Optimizely key for an export event name (None when it is not sent)."""
        if name in self.ignore_events:
            return None
        key = self.events.get(name)
        if key is not None:
            return key
        return name if self.pass_through else None


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = {**out[k], **v} if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _read(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise BlueprintError(f"blueprint {path}: file not found; pass --blueprint with a TOML file") from None
    except OSError as exc:
        raise BlueprintError(f"blueprint {path}: cannot read it ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise BlueprintError(f"blueprint {path}: not valid TOML ({exc}); see data/blueprint.toml for the form") from None


def _check(data: dict[str, Any], src: str) -> None:
    def bad(where: str, what: str) -> BlueprintError:
        return BlueprintError(f"blueprint {src}: field {where}: {what}")

    for k, v in data.items():
        if isinstance(v, dict):
            if k not in _SCHEMA or k == "":
                raise bad(k, f"unknown section; known: {', '.join(s for s in _SCHEMA if s)}")
            for fk, fv in v.items():
                where = f"{k}.{fk}"
                if k == "events":
                    if not isinstance(fv, str) or not fv.strip():
                        raise bad(f'events."{fk}"', "must be a non-empty Optimizely event key (text)")
                    continue
                if fk not in _SCHEMA[k]:
                    raise bad(where, f"unknown field; known: {', '.join(_SCHEMA[k])}")
                if not isinstance(fv, _SCHEMA[k][fk]):
                    raise bad(where, f"must be a {_SCHEMA[k][fk][0].__name__}, got {type(fv).__name__}")
                if isinstance(fv, list) and not all(isinstance(x, str) and x for x in fv):
                    raise bad(where, "must be a list of non-empty texts")
                if (k, fk) in _CHOICES and fv not in _CHOICES[(k, fk)]:
                    raise bad(where, f"must be one of {', '.join(_CHOICES[(k, fk)])}, got {fv!r}")
        else:
            if k not in _SCHEMA[""]:
                raise bad(k, f"unknown top-level field; known: {', '.join(_SCHEMA[''])} and sections "
                          f"{', '.join(s for s in _SCHEMA if s)}")
            if not isinstance(v, _SCHEMA[""][k]):
                raise bad(k, f"must be a {_SCHEMA[''][k][0].__name__}")
    cur = data.get("revenue", {}).get("default_currency")
    if cur is not None and currency_exponent(cur) is None:
        raise bad("revenue.default_currency", f"{cur!r} is not an ISO 4217 currency code with minor units")


def parse_blueprint(data: dict[str, Any], *, source: str = "blueprint") -> Blueprint:
    """A Blueprint from already-merged TOML data (checked field by field)."""
    _check(data, source)
    unmapped = data.get("unmapped", {})
    revenue = data.get("revenue", {})
    tags = data.get("tags", {})
    act = data.get("activations", {})
    d = Blueprint(source=source)
    return Blueprint(
        source=source,
        events=MappingProxyType({str(k): str(v).strip() for k, v in data.get("events", {}).items()}),
        pass_through=unmapped.get("pass_through", d.pass_through),
        ignore_events=frozenset(unmapped.get("ignore", ())),
        skip_types=frozenset(data.get("skip", {}).get("types", d.skip_types)),
        revenue_events=frozenset(revenue.get("events", ())),
        revenue_keys=tuple(revenue.get("keys", d.revenue_keys)),
        default_currency=normalize_currency(revenue.get("default_currency", d.default_currency)),
        allow_refunds=revenue.get("allow_refunds", d.allow_refunds),
        amounts_in_minor_units=revenue.get("amounts_in_minor_units", d.amounts_in_minor_units),
        tags=TagRules(lists=tags.get("lists", "count"), objects=tags.get("objects", "flatten"),
                      exclude=frozenset(tags.get("exclude", ()))),
        activations=Activations(
            events=frozenset(act.get("events", ())),
            experiment=tuple(act.get("experiment", Activations.experiment)),
            variation=tuple(act.get("variation", Activations.variation)),
        ),
    )


def load_blueprint(path: str | os.PathLike[str] | None = None) -> Blueprint:
    """The default blueprint, or a user file read on top of it (see the module doc)."""
    default = _read(DEFAULT_BLUEPRINT)
    if path is None:
        return parse_blueprint(default, source=str(DEFAULT_BLUEPRINT))
    p = Path(path)
    user = _read(p)
    _check(user, str(p))  # name the user's file, not the merge, in errors
    data = _merge(default, user) if user.get("extends", True) else user
    return parse_blueprint(data, source=str(p))
