"""Fault injection for ``POST /v1/events``: a share of 500s, of 429s with ``Retry-After``, of
dropped connections (the socket closed with no response), and added latency; seeded, so a run is
repeatable for the same sequence of requests.

A spec is a mapping or a ``name=value,name=value`` string (also accepted as JSON text), e.g.
``error=0.1,throttle=0.05,retry_after=2,drop=0.02,latency_ms=20,seed=7``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from ..errors import UserInputError

__all__ = ["FaultSpec", "FaultInjector", "parse_faults", "FaultSpecError", "Action"]

Action = Literal["ok", "error", "throttle", "drop"]

_ALIASES = {
    "error": "error_share", "errors": "error_share", "500": "error_share", "error_share": "error_share",
    "throttle": "throttle_share", "429": "throttle_share", "throttle_share": "throttle_share",
    "drop": "drop_share", "drop_share": "drop_share",
    "retry_after": "retry_after", "latency": "latency_ms", "latency_ms": "latency_ms", "seed": "seed",
}


class FaultSpecError(UserInputError):
    """A fault spec that cannot be used (unknown name, share out of range)."""


@dataclass(frozen=True)
class FaultSpec:
    error_share: float = 0.0  # share of requests answered 500
    throttle_share: float = 0.0  # share answered 429 with Retry-After: retry_after
    drop_share: float = 0.0  # share whose connection is closed with no response
    retry_after: float = 1.0  # seconds, in the 429's Retry-After header
    latency_ms: float = 0.0  # added to every request
    seed: int | None = None

    def __post_init__(self) -> None:
        shares = (self.error_share, self.throttle_share, self.drop_share)
        if any(not 0.0 <= s <= 1.0 for s in shares) or sum(shares) > 1.0 + 1e-9:
            raise FaultSpecError(
                f"fault shares must each be within 0..1 and sum to at most 1, got error={self.error_share}, "
                f"throttle={self.throttle_share}, drop={self.drop_share}"
            )
        if self.retry_after < 0 or self.latency_ms < 0:
            raise FaultSpecError("retry_after and latency_ms must not be negative")

    @property
    def active(self) -> bool:
        return bool(self.error_share or self.throttle_share or self.drop_share or self.latency_ms)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_faults(spec: FaultSpec | Mapping[str, Any] | str | None) -> FaultSpec:
    """A :class:`FaultSpec` from a spec, a mapping, ``name=value,...`` text or JSON text."""
    if spec is None or spec == "":
        return FaultSpec()
    if isinstance(spec, FaultSpec):
        return spec
    if isinstance(spec, str):
        text = spec.strip()
        if text.startswith("{"):
            try:
                spec = json.loads(text)
            except json.JSONDecodeError as exc:
                raise FaultSpecError(f"fault spec is not valid JSON ({exc.msg})") from None
        else:
            pairs = {}
            for part in filter(None, (p.strip() for p in text.split(","))):
                name, sep, value = part.partition("=")
                if not sep:
                    raise FaultSpecError(f"fault spec: {part!r} is not name=value (e.g. error=0.1,seed=7)")
                pairs[name.strip()] = value.strip()
            spec = pairs
    if not isinstance(spec, Mapping):
        raise FaultSpecError("fault spec must be an object of name: value")
    known = {f.name: f.type for f in fields(FaultSpec)}
    values: dict[str, Any] = {}
    for name, raw in spec.items():
        field_name = _ALIASES.get(str(name).lower())
        if field_name is None:
            raise FaultSpecError(f"fault spec: unknown name {name!r}; use one of {', '.join(sorted(known))}")
        if raw is None:
            continue
        try:
            values[field_name] = int(raw) if field_name == "seed" else float(raw)
        except (TypeError, ValueError):
            raise FaultSpecError(f"fault spec: {name}={raw!r} is not a number") from None
    return FaultSpec(**values)


class FaultInjector:
    """Draws one action per request from the spec's shares, with its own seeded generator."""

    def __init__(self, spec: FaultSpec) -> None:
        self.spec = spec
        self._rng = random.Random(spec.seed)

    def draw(self) -> Action:
        s = self.spec
        if not (s.error_share or s.throttle_share or s.drop_share):
            return "ok"
        r = self._rng.random()
        if r < s.drop_share:
            return "drop"
        if r < s.drop_share + s.error_share:
            return "error"
        if r < s.drop_share + s.error_share + s.throttle_share:
            return "throttle"
        return "ok"
