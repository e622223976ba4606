"""Delivery to the Optimizely Event API: transport (the one I/O seam), retry policy and
classification, and the concurrent worker that records everything in the ledger.

    >>> from toolkit.delivery import deliver, RetryPolicy
    >>> report = deliver(bodies, endpoint=cfg.event_endpoint, ledger="run.sqlite")  # doctest: +SKIP
"""

from __future__ import annotations

from .ratelimit import TokenBucket
from .retry import LIKELY_CAUSES, RetryPolicy, classify_response, parse_retry_after
from .transport import MockTransport, RequestsTransport, Transport, TransportRequest, TransportResponse
from .worker import MAX_BODY_BYTES, STRICT_HEADER, DeliveryReport, deliver

__all__ = [
    "deliver",
    "DeliveryReport",
    "RetryPolicy",
    "classify_response",
    "parse_retry_after",
    "LIKELY_CAUSES",
    "Transport",
    "TransportRequest",
    "TransportResponse",
    "RequestsTransport",
    "MockTransport",
    "TokenBucket",
    "MAX_BODY_BYTES",
    "STRICT_HEADER",
]
