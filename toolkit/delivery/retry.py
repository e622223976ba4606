"""Retry policy and the classification of Event API responses.

The exception tree decides the retry: a response or failure becomes a
:class:`~toolkit.errors.TransientDeliveryError` (network error, timeout, 429, 5xx: retried with
exponential backoff and full jitter, honouring ``Retry-After``) or a
:class:`~toolkit.errors.TerminalDeliveryError` (any other 4xx, unexpected statuses: never retried).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal

from ..errors import DeliveryError, TerminalDeliveryError, TransientDeliveryError
from .transport import TransportResponse

__all__ = ["RetryPolicy", "classify_response", "parse_retry_after", "LIKELY_CAUSES"]

# The integration's troubleshooting table, for the statuses of the Event API.
LIKELY_CAUSES: dict[int, str] = {
    400: "likely cause: wrong account_id or project_id (or a malformed body); check the ids in the config "
         "against the Optimizely dashboard (Settings > Account, Settings > Projects)",
    401: "likely cause: the endpoint needs credentials; the Event API does not, check --endpoint",
    403: "likely cause: invalid SDK key or wrong environment; use the key of the right environment",
    404: "likely cause: wrong endpoint URL; the Event API is https://logx.optimizely.com/v1/events",
    413: "likely cause: the body is over 3.5 MB; rebuild the bodies with a smaller max_bytes",
}
_TEXT_LIMIT = 500


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff ``min(cap, base * 2**(attempt-1))`` with full (or no) jitter.

    ``max_attempts`` counts every attempt, the first included. A ``Retry-After`` from the server
    replaces the computed delay (bounded by ``max_retry_after``).
    """

    max_attempts: int = 8
    base: float = 0.2
    cap: float = 30.0
    jitter: Literal["full", "none"] = "full"
    max_retry_after: float = 600.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be >= 1")
        if self.base < 0 or self.cap < 0:
            raise ValueError("RetryPolicy.base and cap must be >= 0")
        if self.jitter not in ("full", "none"):
            raise ValueError("RetryPolicy.jitter must be 'full' or 'none'")

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """The delay after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self.cap, self.base * 2 ** max(0, attempt - 1))
        if self.jitter == "none":
            return ceiling
        return (rng or random).uniform(0.0, ceiling)

    def delay(self, attempt: int, error: DeliveryError, rng: random.Random | None = None) -> float:
        if error.retry_after is not None:
            return min(max(0.0, error.retry_after), self.max_retry_after)
        return self.backoff(attempt, rng)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP-date; None if absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lname = name.lower()
    for k, v in headers.items():
        if k.lower() == lname:
            return v
    return None


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _TEXT_LIMIT else text[:_TEXT_LIMIT] + "..."


def classify_response(resp: TransportResponse) -> DeliveryError | None:
    """None for a 2xx; else the error it stands for (transient or terminal), message ready for the ledger."""
    status = resp.status
    if 200 <= status < 300:
        return None
    text = _short(resp.text or "")
    shown = f"HTTP {status}" + (f": {text}" if text else "")
    if status == 429:
        after = parse_retry_after(_header(resp.headers, "Retry-After"))
        hint = f" (Retry-After {after:g} s)" if after is not None else ""
        return TransientDeliveryError(f"{shown}{hint}; rate limited", status=status, retry_after=after)
    if 500 <= status < 600:
        after = parse_retry_after(_header(resp.headers, "Retry-After"))
        return TransientDeliveryError(f"{shown}; server error, resent later", status=status, retry_after=after)
    if 400 <= status < 500:
        cause = LIKELY_CAUSES.get(status, "the Event API refused the body; it is not retried")
        return TerminalDeliveryError(f"{shown}; {cause}", status=status)
    return TerminalDeliveryError(f"{shown}; unexpected status from the Event API (check --endpoint)", status=status)
